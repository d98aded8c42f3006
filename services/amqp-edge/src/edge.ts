/**
 * The AMQP edge service (SPEC §7): a TCP (or TLS) listener that speaks AMQP
 * 0-9-1 to clients, authenticates them against the live projection, relays
 * to an upstream RabbitMQ, and re-checks live connections whenever the event
 * feed applies an event that affects their principal or AccessKey.
 */
import net from "node:net";
import tls from "node:tls";
import type { CredentialResolver, DecisionSink, LiveProjection } from "@portcullis/feed";
import { type Logger, pino } from "pino";
import type { Registry } from "prom-client";
import { FRAME_MIN_SIZE, PROTOCOL_HEADER } from "./codec/constants.ts";
import type { FieldTable } from "./codec/fields.ts";
import { FrameReader } from "./codec/frames.ts";
import { decodeMethod, encodeMethodFrame } from "./codec/methods.ts";
import {
  type ConnectionInfo,
  EdgeConnection,
  type EdgeCore,
  openUpstream,
  type UpstreamTarget,
} from "./connection.ts";
import { EdgeMetrics } from "./metrics.ts";

/** Options of {@link startAmqpEdge}. */
export interface AmqpEdgeOptions {
  /** The live projection every decision is made against (never a network call on the decision path). */
  feed: LiveProjection;
  /** Resolves AccessKeyId → principal and secret. */
  credentials: CredentialResolver;
  /**
   * The upstream broker and the edge's service credentials, e.g.
   * `amqp://guest:guest@127.0.0.1:5672`; for a RabbitMQ cluster, one URL per node
   * (an array, or comma-separated): each client connection goes to the next node
   * in turn and skips a node it cannot reach.
   */
  upstream: {
    url: string | readonly string[];
    connectTimeoutMs?: number;
    /** TLS options for `amqps://` nodes (e.g. `ca` for a private CA; the host name is checked). */
    tls?: tls.ConnectionOptions;
  };
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Listen port (default 5673; 0 = any free port). */
  port?: number;
  /** The AMQP instance id clients name in their username (default `amqp-local`). */
  instanceId?: string;
  /**
   * The account that owns this AMQP instance. When set, principals of other
   * accounts are refused at login: all accounts would otherwise share the
   * upstream's vhosts (ARNs name the principal's own account). Default: unset.
   */
  accountId?: string;
  /** Region in resource ARNs (default `local`). */
  region?: string;
  /** Edge id in logs, metrics and decision records (default `amqp-1`). */
  edgeId?: string;
  /** Largest allowed distance between a password's timestamp and the edge's clock (default 300 000 ms). */
  maxClockSkewMs?: number;
  logger?: Logger;
  /** Registry for the `portcullis_amqp_*` metrics (default: a registry of its own). */
  registry?: Registry;
  /** Receives every denial (and allows per `logAllows`). */
  onDecision?: DecisionSink;
  /**
   * Also send allows to `onDecision` (default false): `true` every one; a
   * function is asked once per allow whether to send it (a decision log's
   * sampling draw, see DecisionLog.edgeOptions).
   */
  logAllows?: boolean | (() => boolean);
  /** Serve TLS with these options instead of plain TCP (`acs:SecureTransport` is then true). */
  tls?: tls.TlsOptions;
  /** Heartbeat proposed to clients, seconds (default 60, as RabbitMQ; 0 disables). */
  heartbeat?: number;
  /** frame-max proposed to clients (default 131 072, capped by the upstream's). */
  frameMax?: number;
  /** channel-max proposed to clients (default 2 047, capped by the upstream's). */
  channelMax?: number;
  /** Time a client has from TCP connect to connection.open (default 10 000 ms). */
  handshakeTimeoutMs?: number;
  /** How long a closing connection waits for the peer's close-ok (default 3 000 ms). */
  closeTimeoutMs?: number;
}

/** Health of the edge: feed staleness (SPEC §6) and connections. */
export interface AmqpEdgeHealth {
  /** Listening and not fail-closed. */
  ok: boolean;
  stale: boolean;
  failClosed: boolean;
  /** Applied event-log position. */
  position: number;
  head: number | undefined;
  lag: number;
  connections: number;
}

/** A running AMQP edge. */
export interface AmqpEdge {
  readonly edgeId: string;
  readonly host: string;
  /** The port actually listened on. */
  readonly port: number;
  /** The registry holding the `portcullis_amqp_*` metrics. */
  readonly registry: Registry;
  /** Snapshot of the open connections. */
  connections(): ConnectionInfo[];
  health(): AmqpEdgeHealth;
  /** Stop listening, close every connection with 320 CONNECTION_FORCED, wait for them. Idempotent. */
  close(): Promise<void>;
}

/** The node URLs of an upstream setting: one URL, an array, or a comma-separated list. */
export function upstreamUrlList(url: string | readonly string[]): string[] {
  return [url]
    .flat()
    .flatMap((u) => u.split(","))
    .map((u) => u.trim())
    .filter((u) => u !== "");
}

/**
 * Parse `amqp://user:pass@host:port` or `amqps://…` (TLS, default port 5671,
 * with `tlsOptions`); the path (vhost) is ignored: clients choose theirs.
 */
export function parseUpstreamUrl(url: string, tlsOptions: tls.ConnectionOptions = {}): UpstreamTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`upstream url \`${url}\` is not a URL (expected amqp://user:pass@host:port)`);
  }
  if (u.protocol !== "amqp:" && u.protocol !== "amqps:")
    throw new Error(`upstream url must start with amqp:// or amqps:// (got \`${u.protocol}//\`)`);
  const secure = u.protocol === "amqps:";
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  return {
    host: host || "127.0.0.1",
    port: u.port ? Number(u.port) : secure ? 5671 : 5672,
    username: decodeURIComponent(u.username || "guest"),
    password: decodeURIComponent(u.password || "guest"),
    ...(secure ? { tls: tlsOptions } : {}),
  };
}

/** What a probe connection learns of the upstream before any client comes. */
interface UpstreamInfo {
  serverProperties: FieldTable;
  channelMax: number;
  frameMax: number;
}

/**
 * Open one connection to the upstream up to connection.tune, then close it:
 * checks that the broker is there and takes the service credentials, and
 * learns its limits and capabilities (which clients are offered).
 */
export function probeUpstream(t: UpstreamTarget, timeoutMs = 10_000): Promise<UpstreamInfo> {
  return new Promise((resolve, reject) => {
    const s = openUpstream(t, () => s.write(PROTOCOL_HEADER));
    let info: Partial<UpstreamInfo> = {};
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(info as UpstreamInfo);
    };
    const timer = setTimeout(
      () => finish(new Error(`upstream ${t.host}:${t.port} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const r = new FrameReader(
      {
        frame(type, _ch, buf, start, end) {
          if (type !== 1) return;
          let m: ReturnType<typeof decodeMethod>;
          try {
            m = decodeMethod(buf, start + 7, end - 1);
          } catch (e) {
            return finish(new Error(`upstream sent an undecodable method: ${(e as Error).message}`));
          }
          if (m.spec.name === "connection.start") {
            info.serverProperties = m.args.serverProperties as FieldTable;
            s.write(
              encodeMethodFrame(0, "connection.start-ok", {
                clientProperties: { product: "portcullis amqp-edge probe", capabilities: {} },
                mechanism: "PLAIN",
                response: Buffer.from(`\u0000${t.username}\u0000${t.password}`),
                locale: "en_US",
              }),
            );
          } else if (m.spec.name === "connection.tune") {
            info = { ...info, channelMax: m.args.channelMax as number, frameMax: m.args.frameMax as number };
            s.write(
              encodeMethodFrame(0, "connection.tune-ok", {
                channelMax: info.channelMax,
                frameMax: info.frameMax,
                heartbeat: 0,
              }),
            );
            s.write(encodeMethodFrame(0, "connection.close", { replyCode: 200, replyText: "probe done" }));
            s.end();
            finish();
          } else if (m.spec.name === "connection.close") {
            finish(
              new Error(
                `upstream ${t.host}:${t.port} refused the service credentials: ${m.args.replyCode} ${m.args.replyText as string}`,
              ),
            );
          }
        },
        splitBody() {},
        error: (_c, text) =>
          finish(new Error(`upstream ${t.host}:${t.port} does not speak AMQP 0-9-1: ${text}`)),
      },
      1 << 20,
    );
    s.on("data", (d: Buffer) => r.push(d));
    s.on("error", (e) => finish(new Error(`upstream ${t.host}:${t.port} unreachable: ${e.message}`)));
    s.on("close", () =>
      finish(new Error(`upstream ${t.host}:${t.port} closed the connection during the handshake`)),
    );
  });
}

/** Probe the nodes in order; the first that answers tells the edge the broker's limits. */
async function probeFirst(nodes: readonly UpstreamTarget[]): Promise<UpstreamInfo> {
  const errors: string[] = [];
  for (const n of nodes) {
    try {
      return await probeUpstream(n);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw new Error(errors.length === 1 ? errors[0] : `no upstream node answered: ${errors.join("; ")}`);
}

/** Start an AMQP edge: probe the upstream, then listen. */
export async function startAmqpEdge(opts: AmqpEdgeOptions): Promise<AmqpEdge> {
  const upstreams = upstreamUrlList(opts.upstream.url).map((u) => parseUpstreamUrl(u, opts.upstream.tls));
  if (upstreams.length === 0) throw new Error("upstream: no URL given (expected amqp://user:pass@host:port)");
  const info = await probeFirst(upstreams);
  let nextUpstream = 0;
  const edgeId = opts.edgeId ?? "amqp-1";
  const logger = (opts.logger ?? pino({ level: "info" })).child({ edge: edgeId });
  const feed = opts.feed;
  let closing = false;
  let closedPromise: Promise<void> | undefined;
  const all = new Set<EdgeConnection>();
  const byPrincipal = new Map<string, Set<EdgeConnection>>();
  const byKey = new Map<string, Set<EdgeConnection>>();
  const metrics = new EdgeMetrics(opts.registry, feed, () => all.size);
  const index = (
    m: Map<string, Set<EdgeConnection>>,
    k: string | undefined,
    c: EdgeConnection,
    add: boolean,
  ) => {
    if (k === undefined) return;
    let s = m.get(k);
    if (add) {
      if (!s) {
        s = new Set();
        m.set(k, s);
      }
      s.add(c);
    } else if (s) {
      s.delete(c);
      if (s.size === 0) m.delete(k);
    }
  };
  const nz = (v: number, none: number) => (v === 0 ? none : v);
  let failClosed = feed.status().failClosed;
  let failCheckedAt = Date.now();
  const upstreamCaps = info.serverProperties.capabilities;
  const core: EdgeCore = {
    edgeId,
    instanceId: opts.instanceId ?? "amqp-local",
    accountId: opts.accountId,
    region: opts.region ?? "local",
    maxClockSkewMs: opts.maxClockSkewMs ?? 300_000,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    closeTimeoutMs: opts.closeTimeoutMs ?? 3_000,
    heartbeat: opts.heartbeat ?? 60,
    channelMax: Math.min(opts.channelMax ?? 2047, nz(info.channelMax, 65535)),
    frameMax: Math.max(FRAME_MIN_SIZE, Math.min(opts.frameMax ?? 131072, nz(info.frameMax, 0xffffffff))),
    serverProperties: {
      ...info.serverProperties,
      capabilities: (upstreamCaps ?? {}) as FieldTable,
      information:
        `Portcullis AMQP edge ${edgeId} in front of ${String(info.serverProperties.product ?? "RabbitMQ")} ${String(info.serverProperties.version ?? "")}`.trim(),
    },
    upstreamOrder() {
      const i = nextUpstream++ % upstreams.length;
      return i === 0 ? upstreams : [...upstreams.slice(i), ...upstreams.slice(0, i)];
    },
    upstreamConnectTimeoutMs: opts.upstream.connectTimeoutMs ?? 5_000,
    feed,
    credentials: opts.credentials,
    metrics,
    logger,
    onDecision: opts.onDecision,
    logAllows: opts.logAllows ?? false,
    failClosed() {
      const now = Date.now();
      if (now - failCheckedAt >= 100) {
        failClosed = feed.status().failClosed;
        failCheckedAt = now;
      }
      return failClosed;
    },
    attach(c) {
      index(byPrincipal, c.principalKey, c, true);
      index(byKey, c.accessKeyId, c, true);
    },
    detach(c) {
      all.delete(c);
      index(byPrincipal, c.principalKey, c, false);
      index(byKey, c.accessKeyId, c, false);
    },
  };

  // Revocation: re-check exactly the connections an event affected (SPEC §7).
  const offApplied = feed.onApplied((_event, affected) => {
    if (affected.principals.size === 0 && affected.accessKeys.size === 0) return;
    const hit = new Set<EdgeConnection>();
    for (const p of affected.principals) for (const c of byPrincipal.get(p) ?? []) hit.add(c);
    for (const k of affected.accessKeys) for (const c of byKey.get(k) ?? []) hit.add(c);
    for (const c of hit) {
      try {
        c.recheck();
      } catch (err) {
        logger.error({ conn: c.id, err }, "revocation re-check failed; closing the connection");
        c.forceClose("internal error while re-checking access");
      }
    }
  });
  const offStatus = feed.onStatus((s) => {
    failClosed = s.failClosed;
    failCheckedAt = Date.now();
    if (s.failClosed) {
      logger.error(
        { position: s.position, head: s.head },
        "event feed fail-closed: closing every AMQP connection",
      );
      for (const c of all) c.forceClose("the authorization feed is unavailable (fail-closed)");
    } else if (s.stale) {
      logger.warn({ position: s.position, head: s.head }, "event feed stale");
    }
  });

  const onSocket = (socket: net.Socket, secure: boolean) => {
    if (closing) {
      socket.destroy();
      return;
    }
    const c = new EdgeConnection(core, socket, secure);
    all.add(c);
  };
  const server = opts.tls
    ? tls.createServer(opts.tls, (s) => onSocket(s, true))
    : net.createServer({ noDelay: true }, (s) => onSocket(s, false));
  server.on("error", (err) => logger.error({ err }, "amqp listener error"));
  const host = opts.host ?? "127.0.0.1";
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port ?? 5673, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    // e.g. EADDRINUSE: leave nothing behind, so the caller may try another port with the same registry
    offApplied();
    offStatus();
    metrics.unregister();
    throw e;
  }
  const port = (server.address() as net.AddressInfo).port;
  logger.info(
    { host, port, upstream: upstreams.map((u) => `${u.host}:${u.port}`), instanceId: core.instanceId },
    "amqp edge listening",
  );

  return {
    edgeId,
    host,
    port,
    registry: metrics.registry,
    connections: () => [...all].map((c) => c.info()),
    health() {
      const s = feed.status();
      return {
        ok: !closing && !s.failClosed,
        stale: s.stale,
        failClosed: s.failClosed,
        position: s.position,
        head: s.head,
        lag: s.lag,
        connections: all.size,
      };
    },
    close() {
      if (closedPromise) return closedPromise;
      closing = true;
      offApplied();
      offStatus();
      closedPromise = (async () => {
        const stopped = new Promise<void>((r) => server.close(() => r()));
        const conns = [...all];
        for (const c of conns) c.forceClose("broker forced connection closure with reason 'shutdown'");
        await Promise.race([
          Promise.all(conns.map((c) => c.closed())),
          new Promise((r) => setTimeout(r, core.closeTimeoutMs + 500).unref()),
        ]);
        await stopped;
        metrics.unregister();
      })();
      return closedPromise;
    },
  };
}
