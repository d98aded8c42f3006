/**
 * `portcullis mqtt-edge` and `portcullis amqp-edge`: one edge alone, against a
 * distributed store (SPEC §6, §9). The edge follows the NATS JetStream event
 * store from the start (a snapshot-free catch-up to the head before it accepts
 * any connection), then applies every new event within milliseconds, and
 * reports its applied position on `<prefix>.edges.positions` so the admin
 * plane's "revocation confirmed" waits for it.
 *
 *   portcullis mqtt-edge --nats nats://10.0.0.5:4222 --master-key-file /etc/portcullis/master.key
 *   portcullis amqp-edge --nats nats://10.0.0.5:4222 --upstream amqp://svc:pw@rabbit:5672 …
 *
 * An optional health listener (`--health-port`) serves `/healthz` (the edge's
 * health: feed staleness, connections), `/readyz` (200 unless stale) and
 * Prometheus `/metrics`.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  type AllowLogging,
  DecisionLog,
  JetStreamDecisionStore,
  SqliteSnapshotStore,
} from "@portcullis/audit";
import { JetStreamEventStore } from "@portcullis/event-store";
import { parseMasterKey, SecretBox } from "@portcullis/events";
import { CredentialResolver, type DecisionSink, LiveProjection, publishPositions } from "@portcullis/feed";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import { logDenials } from "./decision-sinks.ts";
import { startFeedFromSnapshots } from "./feed-start.ts";
import { CliUsageError } from "./io.ts";

/** Options shared by both distributed edges. */
export interface DistributedEdgeOptions {
  /** NATS server URL(s), comma-separated. */
  nats: string;
  /** JetStream stream of the event store (default `PORTCULLIS_EVENTS`). */
  streamName?: string;
  /** NATS subject prefix of the store and the position reports (default `portcullis`). */
  subjectPrefix?: string;
  /** File holding the master key (64 hex or base64); else env PORTCULLIS_MASTER_KEY. */
  masterKeyFile?: string;
  host?: string;
  port?: number;
  instanceId?: string;
  region?: string;
  edgeId?: string;
  /** Health/metrics HTTP port (off when undefined). */
  healthPort?: number;
  /** `-` (default) for stderr, or a file. */
  logFile?: string;
  logLevel?: string;
  /** Fail closed after this long without the feed (ms). */
  failClosedAfterMs?: number;
  /** Allows kept in the decision log besides every denial (default `none`). */
  logAllows?: AllowLogging;
  /** Keep snapshots in `<dir>/edge-snapshots.db` and start from the latest (SPEC §6). */
  snapshotDir?: string;
}

/** What a started distributed edge exposes. */
export interface RunningDistributedEdge {
  kind: "mqtt" | "amqp";
  edgeId: string;
  host: string;
  port: number;
  healthPort: number | undefined;
  feed: LiveProjection;
  close(): Promise<void>;
}

/** The pieces every edge kind needs, started in order; `close` undoes them in reverse. */
interface EdgeBase {
  logger: Logger;
  registry: Registry;
  nc: NatsConnection;
  feed: LiveProjection;
  credentials: CredentialResolver;
  onDecision: DecisionSink;
  logAllows: false | (() => boolean);
  closers: Array<() => Promise<void> | void>;
}

/** The master key from `--master-key-file` or PORTCULLIS_MASTER_KEY (required: edges open AccessKey secrets). */
export function masterKeyFrom(file: string | undefined): SecretBox {
  const text = file ? readFileSync(file, "utf8") : process.env.PORTCULLIS_MASTER_KEY;
  if (!text)
    throw new CliUsageError(
      "an edge needs the master key the AccessKey secrets are sealed with: --master-key-file FILE or PORTCULLIS_MASTER_KEY",
    );
  return new SecretBox(parseMasterKey(text));
}

async function closeAll(closers: Array<() => Promise<void> | void>, logger: Logger): Promise<void> {
  for (const c of closers.splice(0).reverse()) {
    try {
      await c();
    } catch (err) {
      logger.warn({ err }, "close failed");
    }
  }
}

async function startBase(
  kind: "mqtt" | "amqp",
  o: DistributedEdgeOptions,
  edgeId: string,
): Promise<EdgeBase> {
  const box = masterKeyFrom(o.masterKeyFile);
  const logFile = o.logFile ?? "-";
  const logger = pino(
    { level: o.logLevel ?? process.env.PORTCULLIS_LOG_LEVEL ?? "info", base: { pid: process.pid, edgeId } },
    logFile === "-" ? pino.destination(2) : pino.destination({ dest: logFile, mkdir: true, sync: false }),
  );
  const closers: EdgeBase["closers"] = [];
  try {
    const nc = await connect({
      servers: o.nats.split(","),
      name: `portcullis-${kind}-edge-${edgeId}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    closers.push(() => nc.drain());
    const store = await JetStreamEventStore.connect({
      connection: nc,
      ...(o.streamName ? { streamName: o.streamName } : {}),
      ...(o.subjectPrefix ? { subjectPrefix: o.subjectPrefix } : {}),
    });
    closers.push(() => store.close());
    // INVARIANT: start() resolves only after every event up to the head is applied,
    // so the listeners below never accept a connection on an old state.
    const feedOpts = {
      ...(o.failClosedAfterMs !== undefined ? { failClosedAfterMs: o.failClosedAfterMs } : {}),
      onError: (err: unknown, where: string) => logger.warn({ err, where }, "feed error"),
    };
    let feed: LiveProjection;
    if (o.snapshotDir) {
      mkdirSync(o.snapshotDir, { recursive: true });
      const snaps = SqliteSnapshotStore.open(join(o.snapshotDir, "edge-snapshots.db"));
      closers.push(() => snaps.close());
      const started = await startFeedFromSnapshots(store, snaps, logger, feedOpts);
      feed = started.feed;
      closers.push(() => feed.close());
      closers.push(() => started.stop());
    } else {
      feed = await LiveProjection.start(store, feedOpts);
      closers.push(() => feed.close());
    }
    const credentials = new CredentialResolver(feed.projection, box);
    feed.onApplied((_e, affected) => credentials.forget(affected.accessKeys));
    // The decision log of a distributed edge is a JetStream stream (SPEC §8), read by `audit verify`.
    const registry = new Registry();
    const decisionLog = new DecisionLog({
      writer: await JetStreamDecisionStore.connect({
        connection: nc,
        edgeId,
        ...(o.subjectPrefix ? { subjectPrefix: o.subjectPrefix } : {}),
      }),
      allows: o.logAllows ?? "none",
      onError: (err) => logger.warn({ err }, "decision log write failed (retrying)"),
    });
    decisionLog.registerMetrics(registry);
    closers.push(() => decisionLog.close());
    // The edge draws allows before it builds a record and hands over only the ones drawn.
    const edgeLog = decisionLog.edgeOptions();
    const onDecision = logDenials(logger, edgeLog.onDecision);
    return {
      logger,
      registry,
      nc,
      feed,
      credentials,
      onDecision,
      logAllows: edgeLog.logAllows,
      closers,
    };
  } catch (e) {
    await closeAll(closers, logger);
    throw e;
  }
}

/** `/healthz`, `/readyz`, `/metrics` for one edge. */
function healthServer(
  health: () => { ok: boolean; stale: boolean },
  registry: Registry,
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(String(err));
        },
      );
      return;
    }
    if (path === "/healthz" || path === "/readyz") {
      const h = health();
      const ok = path === "/healthz" ? h.ok : h.ok && !h.stale;
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(h));
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "NotFound", message: `no route \`${path}\`` }));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** Start the edge of `kind` on the base, then positions and health; shared tail of both commands. */
async function finish(
  kind: "mqtt" | "amqp",
  base: EdgeBase,
  o: DistributedEdgeOptions,
  edgeId: string,
  edge: { host: string; port: number; health(): { ok: boolean; stale: boolean }; close(): Promise<void> },
): Promise<RunningDistributedEdge> {
  base.closers.push(() => edge.close());
  const stop = publishPositions(
    base.nc,
    base.feed,
    { edgeId, kind },
    o.subjectPrefix ? { prefix: o.subjectPrefix } : {},
  );
  base.closers.push(stop);
  let healthPort: number | undefined;
  if (o.healthPort !== undefined) {
    const server = await healthServer(
      () => edge.health(),
      base.registry,
      o.host ?? "127.0.0.1",
      o.healthPort,
    );
    const addr = server.address();
    healthPort = typeof addr === "object" && addr ? addr.port : o.healthPort;
    base.closers.push(() => new Promise<void>((r) => server.close(() => r())));
  }
  base.logger.info({ kind, port: edge.port, position: base.feed.position }, "edge ready");
  return {
    kind,
    edgeId,
    host: edge.host,
    port: edge.port,
    healthPort,
    feed: base.feed,
    close: () => closeAll(base.closers, base.logger),
  };
}

/** Options of `portcullis mqtt-edge`. */
export interface MqttEdgeCommandOptions extends DistributedEdgeOptions {
  tlsPort?: number;
  tlsKeyFile?: string;
  tlsCertFile?: string;
  wsPort?: number;
  refusedPublish?: "disconnect" | "drop";
}

/** Start an MQTT edge alone against a JetStream store. */
export async function runMqttEdge(o: MqttEdgeCommandOptions): Promise<RunningDistributedEdge> {
  const { startMqttEdge } = await import("@portcullis/mqtt-edge");
  const edgeId = o.edgeId ?? `mqtt-${process.pid}`;
  if (o.tlsPort !== undefined && !(o.tlsKeyFile && o.tlsCertFile))
    throw new CliUsageError("--tls-port needs --tls-key FILE and --tls-cert FILE");
  const base = await startBase("mqtt", o, edgeId);
  try {
    const edge = await startMqttEdge({
      feed: base.feed,
      credentials: base.credentials,
      host: o.host ?? "127.0.0.1",
      port: o.port ?? 1883,
      ...(o.tlsPort !== undefined
        ? {
            tls: {
              port: o.tlsPort,
              key: readFileSync(o.tlsKeyFile!),
              cert: readFileSync(o.tlsCertFile!),
              host: o.host ?? "127.0.0.1",
            },
          }
        : {}),
      ...(o.wsPort !== undefined ? { ws: { port: o.wsPort, host: o.host ?? "127.0.0.1" } } : {}),
      instanceId: o.instanceId ?? "mqtt-local",
      region: o.region ?? "local",
      edgeId,
      ...(o.refusedPublish ? { refusedPublish: o.refusedPublish } : {}),
      logger: base.logger.child({ component: "mqtt-edge" }),
      registry: base.registry,
      onDecision: base.onDecision,
      logAllows: base.logAllows,
    });
    return await finish("mqtt", base, o, edgeId, edge);
  } catch (e) {
    await closeAll(base.closers, base.logger);
    throw e;
  }
}

/** Options of `portcullis amqp-edge`. */
export interface AmqpEdgeCommandOptions extends DistributedEdgeOptions {
  upstream: string;
  /** A PEM CA file for an `amqps://` upstream. */
  upstreamCa?: string;
  /** The account owning this AMQP instance: other accounts' principals are refused at login. */
  accountId?: string;
  maxClockSkewMs?: number;
}

/** Start an AMQP edge alone against a JetStream store. */
export async function runAmqpEdge(o: AmqpEdgeCommandOptions): Promise<RunningDistributedEdge> {
  const { startAmqpEdge } = await import("@portcullis/amqp-edge");
  const edgeId = o.edgeId ?? `amqp-${process.pid}`;
  const base = await startBase("amqp", o, edgeId);
  try {
    const edge = await startAmqpEdge({
      feed: base.feed,
      credentials: base.credentials,
      upstream: { url: o.upstream, ...(o.upstreamCa ? { tls: { ca: readFileSync(o.upstreamCa) } } : {}) },
      host: o.host ?? "127.0.0.1",
      port: o.port ?? 5673,
      instanceId: o.instanceId ?? "amqp-local",
      region: o.region ?? "local",
      edgeId,
      ...(o.accountId ? { accountId: o.accountId } : {}),
      ...(o.maxClockSkewMs !== undefined ? { maxClockSkewMs: o.maxClockSkewMs } : {}),
      logger: base.logger.child({ component: "amqp-edge" }),
      registry: base.registry,
      onDecision: base.onDecision,
      logAllows: base.logAllows,
    });
    return await finish("amqp", base, o, edgeId, edge);
  } catch (e) {
    await closeAll(base.closers, base.logger);
    throw e;
  }
}
