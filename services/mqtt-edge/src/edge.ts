/**
 * The MQTT edge (SPEC §4.1, §7): an aedes broker whose hooks are thin adapters
 * over the live projection. Every CONNECT, PUBLISH (including will and
 * retained messages), SUBSCRIBE filter and delivery is decided in memory by
 * `feed.projection.authorize`; no network call happens on the message path.
 * Events applied by the feed re-check the live sessions they affect.
 *
 * Hooks (the order aedes runs them in):
 * - `authenticate` (CONNECT): signature username/password, client id, Group ID
 *   ownership, `mq:MqttInstanceAccess`. Answers CONNACK 2 (identifier rejected:
 *   client id malformed or too long, unknown Group ID), 3 (server unavailable:
 *   fail-closed), 4 (bad user name or password: malformed username, unknown
 *   AccessKey, wrong signature) or 5 (not authorized: inactive key, disabled
 *   user, Group ID of another user, instance access denied).
 * - `authorizePublish` (PUBLISH, will): `mq:PUB` with `mq:Qos`, `mq:Retain`. A
 *   refused PUBLISH is, by `refusedPublish`: `drop` (default) — acknowledged
 *   according to its QoS and discarded, the session stays ([MQTT-3.3.5-2] allows
 *   "make a positive acknowledgement ... or close the Network Connection"); or
 *   `disconnect` — the network connection is closed. A refused will is not published.
 * - `authorizeSubscribe` (each SUBSCRIBE filter): `mq:SUB` on the filter; a
 *   refused filter gets return code 0x80 while the others are granted [MQTT-3.9.3].
 * - `authorizeForward` (each delivery, synchronous, also retained and queued
 *   messages): `mq:SUB` on the message's topic for the receiving principal.
 *
 * Edge checks before the policy: topics starting with `$` (`$SYS/…`) are refused
 * to clients [MQTT-4.7.2]; when `requireTopics` (default true, as in ApsaraMQ)
 * the topic's parent topic (its first level) must exist in the instance; when the
 * feed is fail-closed everything is refused.
 *
 * Inside aedes every topic is prefixed with its account (see TopicEntry in
 * session.ts), so accounts never share routing, retained messages or queues. On
 * the message path a per-session memo of allows (AllowMemo) spares the trip
 * through the projection between events.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { safeEqual } from "@portcullis/events";
import type {
  CredentialResolver,
  DecisionRecord,
  DecisionSink,
  FeedStatus,
  LiveProjection,
} from "@portcullis/feed";
import { nowIso, recordContext } from "@portcullis/feed";
import {
  type ArnScope,
  type DecidingStatement,
  type Decision,
  getSystemPolicy,
  mqInstanceArn,
  type RequestContext,
} from "@portcullis/policy";
import { type Affected, type PrincipalRef, type Projection, principalKey } from "@portcullis/projection";
import { Aedes, type AedesPublishPacket, type Client, type PublishPacket, type Subscription } from "aedes";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import {
  CONN_INFO,
  type ConnectionInfo,
  type Listener,
  listenTcp,
  listenTls,
  listenWs,
  type TaggedConnection,
} from "./listeners.ts";
import { type ConnectResult, EdgeMetrics, RESULT, type Result, STAGE, type Stage } from "./metrics.ts";
import {
  AllowMemo,
  SESSION,
  type Session,
  SessionRegistry,
  sessionContexts,
  type TopicEntry,
} from "./session.ts";
import { mqttPassword, parseClientId, parseSignatureUsername, passwordText } from "./signature.ts";
import { AuthThrottle, type AuthThrottleOptions } from "./throttle.ts";

/** Options of {@link startMqttEdge}. */
export interface MqttEdgeOptions {
  /** The live projection to authorize against (already caught up). */
  feed: LiveProjection;
  /** AccessKey lookup (opens sealed secrets). */
  credentials: CredentialResolver;
  /** TCP listener address (default `127.0.0.1`). */
  host?: string;
  /** TCP port (default 1883; 0 = any free port). */
  port?: number;
  /** TLS listener: certificate and key in PEM. */
  tls?: { port: number; key: string | Buffer; cert: string | Buffer; host?: string };
  /** WebSocket listener (`ws://`; `wss://` when `key`/`cert` are given). */
  ws?: { port: number; host?: string; key?: string | Buffer; cert?: string | Buffer };
  /** MQTT instance this edge serves (default `mqtt-local`). */
  instanceId?: string;
  /** Region in ARNs (default `local`). */
  region?: string;
  /** Name of this edge in logs, decision records and position reports (default `mqtt-<random>`). */
  edgeId?: string;
  /** What a refused PUBLISH does (default `drop`: acknowledge and discard). */
  refusedPublish?: "disconnect" | "drop";
  /** Require the topic's parent topic (first level) to exist in the instance (default true). */
  requireTopics?: boolean;
  /**
   * TCP_NODELAY on client sockets (default true): deliveries go out at once instead of waiting
   * for Nagle's algorithm (which, against a client's delayed ACK, can hold a message ~40 ms).
   * `false` trades that latency for fewer, larger TCP segments.
   */
  noDelay?: boolean;
  /** Largest MQTT packet accepted, in bytes (default 1 MiB); a larger one closes the connection. */
  maxPacketSize?: number;
  /** Time a connection has to send CONNECT, in ms (default 10 000). */
  connectTimeoutMs?: number;
  /** Backoff of repeated authentication failures. */
  authThrottle?: AuthThrottleOptions;
  /** How often a refused delivery of one topic to one session is logged, in ms (default 10 000; every one is counted). */
  forwardLogIntervalMs?: number;
  /** Logger (default pino to stdout at `info`). */
  logger?: Logger;
  /** Metrics registry (default a fresh one). */
  registry?: Registry;
  /** Called for every denial (and allows per `logAllows`); must not throw. */
  onDecision?: DecisionSink;
  /**
   * Also send allows to `onDecision`: `true` every one; a function is asked once
   * per allow, before anything is built, whether to send it (a decision log's
   * sampling draw, see DecisionLog.edgeOptions) — the allow memo stays in use, so
   * the allows not sent cost one call. Default false.
   */
  logAllows?: boolean | (() => boolean);
  /** Called when a revocation removed a subscription or closed a session. */
  onRevocation?: (r: RevocationRecord) => void;
}

/** A revocation the edge carried out. */
export interface RevocationRecord {
  kind: "unsubscribe" | "disconnect";
  clientId: string;
  /** Principal key (`<acct>` or `<acct>/<userId>`). */
  principal: string;
  /** The filter removed (unsubscribe). */
  filter?: string;
  reason: string;
  /** Position of the event that caused it. */
  position: number;
  /** Epoch ms (fractional) when the event was applied. */
  decidedAt: number;
  /** Epoch ms (fractional) when the subscription was gone / the connection closed. */
  completedAt: number;
}

/** Health of the edge (SPEC §6: knows within 2 s when it cannot see the feed). */
export interface MqttEdgeHealth {
  /** Feed visible and not lagging. */
  ok: boolean;
  edgeId: string;
  position: number;
  head: number | undefined;
  lag: number;
  stale: boolean;
  failClosed: boolean;
  sessions: number;
}

/** A live session, as reported by {@link MqttEdge.sessions}. */
export interface SessionInfo {
  clientId: string;
  principal: string;
  accessKeyId: string;
  transport: string;
  sourceIp: string;
  subscriptions: { filter: string; qos: number }[];
}

/** A running MQTT edge. */
export interface MqttEdge {
  readonly edgeId: string;
  readonly instanceId: string;
  readonly region: string;
  /** TCP host and port. */
  readonly host: string;
  readonly port: number;
  readonly tlsPort?: number;
  readonly wsPort?: number;
  readonly registry: Registry;
  /** The aedes broker (for tests and embedding; do not replace its hooks). */
  readonly broker: Aedes;
  health(): MqttEdgeHealth;
  sessions(): SessionInfo[];
  /** Stop listening and close every session (the feed is left running). */
  close(): Promise<void>;
}

/** Internal fields of an aedes Client that the edge relies on (aedes 1.x, lib/client.js). */
interface ClientInternals {
  subscriptions: Record<string, { qos: number }>;
  clean: boolean;
  closed: boolean;
  will: unknown;
  _parser: {
    _parseLength(): boolean;
    _parseUnsubscribe(): void;
    _emitError(e: Error): void;
    error: Error | null;
    packet: { length: number };
  };
  [SESSION]?: Session;
  [PENDING_UNSUBSCRIBES]?: UnsubscribePacket[];
}

/** UNSUBSCRIBE packets parsed before the session existed (at most aedes' queueLimit). */
const PENDING_UNSUBSCRIBES: unique symbol = Symbol("portcullis.mqtt.pendingUnsubscribes");

interface UnsubscribePacket {
  cmd: "unsubscribe";
  unsubscriptions: unknown[];
}

/** Name an UNSUBSCRIBE's filters in the session's namespace (see TopicEntry). */
function namespaceUnsubscribe(p: UnsubscribePacket, s: Session): void {
  p.unsubscriptions = p.unsubscriptions.map((f) => (typeof f === "string" ? s.topics.prefix + f : f));
}
const internals = (c: Client) => c as unknown as ClientInternals;

/** The part of aedes-persistence the edge uses. */
interface Persistence {
  removeSubscriptions(client: Client, topics: string[]): Promise<unknown>;
}

/** An authentication refusal: CONNACK code and a message for the log. */
class Refusal extends Error {
  override name = "MqttConnectRefused";
  constructor(
    readonly returnCode: 2 | 3 | 4 | 5,
    readonly result: ConnectResult,
    message: string,
    readonly decision?: Decision,
  ) {
    super(message);
  }
}

/** Marks a PUBLISH refused in `drop` mode: acknowledged, never routed. */
const DROPPED = new WeakSet<object>();

const now = () => performance.timeOrigin + performance.now();
const statementLabel = (s: DecidingStatement) => `${s.policyType}:${s.policy}@${s.version}#${s.statement}`;

/** Start the MQTT edge: listeners up once the feed has caught up. */
export async function startMqttEdge(opts: MqttEdgeOptions): Promise<MqttEdge> {
  const core = new EdgeCore(opts);
  await core.start();
  return core;
}

class EdgeCore implements MqttEdge {
  readonly edgeId: string;
  readonly instanceId: string;
  readonly region: string;
  readonly host: string;
  port = 0;
  tlsPort?: number;
  wsPort?: number;
  readonly registry: Registry;
  broker!: Aedes;

  readonly #opts: MqttEdgeOptions;
  readonly #feed: LiveProjection;
  readonly #log: Logger;
  readonly #metrics: EdgeMetrics;
  readonly #sessions = new SessionRegistry();
  readonly #throttle: AuthThrottle;
  readonly #requireTopics: boolean;
  readonly #dropRefused: boolean;
  readonly #maxPacket: number;
  readonly #forwardLogMs: number;
  /** The decision log's draw for an allow the memo answered (`logAllows` as a function). */
  readonly #drawAllow: (() => boolean) | undefined;
  readonly #listeners: Listener[] = [];
  readonly #unsubscribe: (() => void)[] = [];
  #failClosed = false;
  #closed = false;

  constructor(opts: MqttEdgeOptions) {
    this.#opts = opts;
    this.#feed = opts.feed;
    this.edgeId = opts.edgeId ?? `mqtt-${randomUUID().slice(0, 8)}`;
    this.instanceId = opts.instanceId ?? "mqtt-local";
    this.region = opts.region ?? "local";
    this.host = opts.host ?? "127.0.0.1";
    this.registry = opts.registry ?? new Registry();
    this.#log = (opts.logger ?? pino({ name: "mqtt-edge" })).child({ edgeId: this.edgeId });
    this.#throttle = new AuthThrottle(opts.authThrottle);
    this.#requireTopics = opts.requireTopics ?? true;
    this.#dropRefused = (opts.refusedPublish ?? "drop") === "drop";
    this.#maxPacket = opts.maxPacketSize ?? 1024 * 1024;
    this.#forwardLogMs = opts.forwardLogIntervalMs ?? 10_000;
    this.#drawAllow = typeof opts.logAllows === "function" ? opts.logAllows : undefined;
    this.#metrics = new EdgeMetrics(this.registry, {
      status: () => this.#feed.status(),
      connections: () => {
        const by: Record<string, number> = { tcp: 0, tls: 0, ws: 0, wss: 0 };
        for (const s of this.#sessions.all) by[s.info.transport] = (by[s.info.transport] ?? 0) + 1;
        return by;
      },
    });
  }

  async start(): Promise<void> {
    const feed = this.#feed;
    // An edge accepts no connection before it has applied what the store holds (SPEC §6).
    const st = feed.status();
    if (st.head !== undefined && st.head > feed.position) {
      const ok = await feed.waitForPosition(st.head, 60_000);
      if (!ok) throw new Error(`mqtt edge: the feed did not catch up to position ${st.head}`);
    }
    this.#observe(feed.status());
    this.#unsubscribe.push(
      feed.onStatus((s) => this.#observe(s)),
      feed.onApplied((event, affected) => this.#onApplied(event.position, affected)),
    );

    const broker = new Aedes({
      id: this.edgeId,
      connectTimeout: this.#opts.connectTimeoutMs ?? 10_000,
      // ApsaraMQ client ids are up to 64 characters, also for MQTT 3.1 clients.
      maxClientsIdLength: 64,
      authenticate: (client, username, password, done) =>
        this.#authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => this.#authorizeSubscribe(client, sub, done),
      authorizeForward: (client, packet) => this.#authorizeForward(client, packet),
    });
    await broker.listen();
    this.broker = broker;
    // `drop` mode: a refused PUBLISH was authorized "ok" so that aedes acknowledges it; never route it.
    const publish = broker.publish.bind(broker) as (
      p: PublishPacket,
      c: unknown,
      d?: (e?: Error) => void,
    ) => void;
    (broker as unknown as { publish: typeof publish }).publish = (packet, client, done) => {
      if (typeof client === "function") {
        done = client as (e?: Error) => void;
        client = null;
      }
      if (DROPPED.has(packet)) {
        DROPPED.delete(packet);
        done?.();
        return;
      }
      publish(packet, client, done);
    };
    broker.on("clientDisconnect", (client) => this.#forget(client));
    broker.on("clientError", (client, err) => this.#connectionError(client, err));
    broker.on("connectionError", (client, err) => this.#connectionError(client, err));
    (broker as unknown as { on(e: "error", l: (err: Error) => void): void }).on("error", (err) =>
      this.#log.error({ err }, "broker error"),
    );

    const handle = (conn: TaggedConnection, req?: IncomingMessage) => this.#handle(conn, req);
    try {
      const noDelay = this.#opts.noDelay ?? true;
      const tcp = await listenTcp(this.host, this.#opts.port ?? 1883, handle, noDelay);
      this.#listeners.push(tcp);
      this.port = tcp.port;
      if (this.#opts.tls) {
        const t = this.#opts.tls;
        const l = await listenTls(t.host ?? this.host, t.port, t, handle, noDelay);
        this.#listeners.push(l);
        this.tlsPort = l.port;
      }
      if (this.#opts.ws) {
        const w = this.#opts.ws;
        const l = await listenWs(
          w.host ?? this.host,
          w.port,
          {
            maxPayload: this.#maxPacket + 8,
            noDelay,
            ...(w.key && w.cert ? { tls: { key: w.key, cert: w.cert } } : {}),
          },
          handle,
        );
        this.#listeners.push(l);
        this.wsPort = l.port;
      }
    } catch (e) {
      await this.close();
      throw e;
    }
    this.#log.info(
      {
        instanceId: this.instanceId,
        listeners: this.#listeners.map((l) => `${l.transport}://${l.host}:${l.port}`),
        position: feed.position,
      },
      "mqtt edge listening",
    );
  }

  /**
   * Take in a feed status. The message path reads the flag this keeps (no status
   * computation per message): it follows the feed's status events (every probe,
   * default 500 ms), and every CONNECT and health() call refreshes it at once.
   */
  #observe(s: FeedStatus): void {
    if (s.failClosed === this.#failClosed) return;
    this.#failClosed = s.failClosed;
    this.#log.warn(
      { failClosed: s.failClosed, stale: s.stale, position: s.position, head: s.head },
      s.failClosed ? "event feed lost: refusing everything (fail-closed)" : "event feed back",
    );
  }

  health(): MqttEdgeHealth {
    const s = this.#feed.status();
    this.#observe(s);
    return {
      ok: !s.stale && !s.failClosed && !this.#closed,
      edgeId: this.edgeId,
      position: s.position,
      head: s.head,
      lag: s.lag,
      stale: s.stale,
      failClosed: s.failClosed,
      sessions: this.#sessions.all.size,
    };
  }

  sessions(): SessionInfo[] {
    return [...this.#sessions.all].map((s) => ({
      clientId: s.clientId,
      principal: s.principalKey,
      accessKeyId: s.accessKeyId,
      transport: s.info.transport,
      sourceIp: s.info.sourceIp,
      subscriptions: Object.entries(internals(s.client).subscriptions).map(([filter, sub]) => ({
        filter: s.topics.get(filter)?.plain ?? filter,
        qos: sub.qos,
      })),
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const u of this.#unsubscribe) u();
    await Promise.all(this.#listeners.map((l) => l.close()));
    if (this.broker) await new Promise<void>((r) => this.broker.close(() => r()));
  }

  // ---------------------------------------------------------------------------
  // Connections

  #handle(conn: TaggedConnection, req?: IncomingMessage): void {
    if (this.#closed) {
      conn.destroy();
      return;
    }
    const client = this.broker.handle(conn, req);
    // Oversize packets: aedes' parser has no limit, so refuse as soon as the
    // fixed header announces the length (before any payload is buffered).
    const parser = internals(client)._parser;
    const parseLength = parser._parseLength;
    const max = this.#maxPacket;
    parser._parseLength = function guardedParseLength(this: typeof parser) {
      const ok = parseLength.call(this);
      if (ok && this.packet.length > max) {
        this._emitError(new Error(`packet of ${this.packet.length} bytes exceeds the limit of ${max} bytes`));
        return false;
      }
      return ok;
    };
    // UNSUBSCRIBE names filters as the client knows them; aedes keys subscriptions by their
    // internal (account-namespaced) names and has no unsubscribe hook: rewrite the packet as it
    // is parsed, or — when it arrives before authentication finished — once the session exists.
    // (Hooked into the parser's UNSUBSCRIBE step rather than its "packet" event, so no other
    // packet pays for it: a second "packet" listener costs every PUBLISH and PUBACK a call and
    // a copy of the listener array.)
    const ci = internals(client);
    ci[PENDING_UNSUBSCRIBES] = [];
    const parseUnsubscribe = parser._parseUnsubscribe;
    parser._parseUnsubscribe = function namespacedParseUnsubscribe(this: typeof parser) {
      parseUnsubscribe.call(this);
      if (this.error) return; // malformed: aedes closes the connection
      const p = this.packet as unknown as UnsubscribePacket;
      const s = ci[SESSION];
      if (s) namespaceUnsubscribe(p, s);
      else ci[PENDING_UNSUBSCRIBES]?.push(p);
    };
    conn.once("close", () => this.#forget(client));
  }

  #forget(client: Client): void {
    const s = internals(client)[SESSION];
    if (s) this.#sessions.remove(s);
  }

  #connectionError(client: Client, err: Error): void {
    const msg = err?.message ?? String(err);
    // Socket resets and timeouts are normal life; parser and protocol errors are bad input.
    const benign = /ECONNRESET|EPIPE|connection closed|keep alive timeout|write after end/i.test(msg);
    if (!benign) this.#metrics.protocolErrors++;
    const info = (client?.conn as TaggedConnection | undefined)?.[CONN_INFO];
    this.#log[benign ? "debug" : "info"](
      { clientId: client?.id ?? undefined, sourceIp: info?.sourceIp, error: msg },
      "mqtt connection closed on error",
    );
  }

  // ---------------------------------------------------------------------------
  // CONNECT

  #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (err: (Error & { returnCode: number }) | null, ok: boolean | null) => void,
  ): void {
    const info = (client.conn as TaggedConnection)[CONN_INFO] ?? {
      transport: "tcp" as const,
      sourceIp: "unknown",
      secure: false,
    };
    const parsed = parseSignatureUsername(username);
    const keyId = parsed.ok ? parsed.value.accessKeyId : undefined;
    const run = () => {
      if (client.closed || this.#closed) return;
      let session: Session;
      try {
        session = this.#checkConnect(client, info, parsed, password);
      } catch (e) {
        const r =
          e instanceof Refusal ? e : new Refusal(3, "server_unavailable", `internal error: ${String(e)}`);
        this.#metrics.connect(r.result);
        if (r.returnCode === 4) this.#throttle.failure(info.sourceIp, keyId);
        if (!r.decision) {
          this.#log.info(
            {
              clientId: client.id,
              sourceIp: info.sourceIp,
              transport: info.transport,
              accessKeyId: keyId,
              returnCode: r.returnCode,
              reason: r.message,
            },
            "mqtt connect refused",
          );
        }
        const err = Object.assign(new Error(r.message), { returnCode: r.returnCode });
        done(err, false);
        return;
      }
      this.#throttle.success(info.sourceIp, session.accessKeyId);
      this.#metrics.connect("accepted");
      const ci = internals(client);
      ci[SESSION] = session;
      for (const p of ci[PENDING_UNSUBSCRIBES] ?? []) namespaceUnsubscribe(p, session);
      ci[PENDING_UNSUBSCRIBES] = undefined;
      this.#sessions.add(session);
      this.#log.debug(
        { clientId: session.clientId, principal: session.principalKey, transport: info.transport },
        "mqtt session authenticated",
      );
      done(null, true);
    };
    const wait = this.#throttle.delayFor(info.sourceIp, keyId);
    if (wait > 0) {
      this.#metrics.throttled++;
      setTimeout(run, wait);
    } else run();
  }

  #checkConnect(
    client: Client,
    info: ConnectionInfo,
    parsed: ReturnType<typeof parseSignatureUsername>,
    password: Buffer | undefined,
  ): Session {
    const clientId = client.id;
    if (!parsed.ok) throw new Refusal(4, "bad_credentials", parsed.reason);
    const { accessKeyId, instanceId } = parsed.value;
    if (instanceId !== this.instanceId) {
      throw new Refusal(
        4,
        "bad_credentials",
        `username names instance \`${instanceId}\`; this edge serves \`${this.instanceId}\``,
      );
    }
    const cid = parseClientId(clientId);
    if (!cid.ok) throw new Refusal(2, "identifier_rejected", cid.reason);
    const { groupId, deviceId } = cid.value;
    const pw = passwordText(password);
    const cred = this.#opts.credentials.resolve(accessKeyId);
    if (!cred) {
      // Spend the time a real check would, so unknown ids cannot be told apart by timing.
      safeEqual(pw ?? "", mqttPassword("unknown-access-key", clientId));
      throw new Refusal(4, "bad_credentials", `unknown AccessKeyId \`${accessKeyId}\``);
    }
    if (pw === undefined || !safeEqual(pw, mqttPassword(cred.secret, clientId))) {
      throw new Refusal(4, "bad_credentials", `signature does not match for AccessKeyId \`${accessKeyId}\``);
    }
    if (!cred.usable) {
      throw new Refusal(
        5,
        "not_authorized",
        `AccessKey \`${accessKeyId}\` is inactive or its user is disabled`,
      );
    }
    this.#observe(this.#feed.status());
    if (this.#failClosed) {
      throw new Refusal(3, "server_unavailable", "the edge cannot see the event feed (fail-closed)");
    }
    const principal = cred.principal;
    const gidProblem = this.#groupIdProblem(principal, groupId);
    if (gidProblem) throw new Refusal(gidProblem.code, gidProblem.result, gidProblem.reason);
    const scope: ArnScope = { region: this.region, accountId: principal.accountId };
    const ctx = sessionContexts(info, clientId, groupId);
    const session: Session = {
      client,
      clientId,
      groupId,
      deviceId,
      accessKeyId,
      principal,
      principalKey: principalKey(principal),
      info,
      scope,
      topics: this.#sessions.topicCache(scope, this.instanceId),
      ...ctx,
      connectedAt: Date.now(),
      revoked: false,
      removing: new Set(),
      forwardLog: new Map(),
      memo: new AllowMemo(),
    };
    const resource = mqInstanceArn(scope, this.instanceId);
    const d = this.#feed.projection.authorize(
      principal,
      "mq:MqttInstanceAccess",
      resource,
      ctx.connectContext,
    );
    this.#count(STAGE.connect, d);
    if (d.decision !== "Allow") {
      this.#denied("connect", session, d, ctx.connectContext);
      throw new Refusal(5, "not_authorized", d.message ?? "instance access denied", d);
    }
    this.#allowed(session, d, ctx.connectContext);
    return session;
  }

  /** Why this principal may not use this Group ID (SPEC §2), or undefined when it may. */
  #groupIdProblem(
    p: PrincipalRef,
    groupId: string,
  ): { code: 2 | 5; result: ConnectResult; reason: string } | undefined {
    const entry = this.#feed.projection.account(p.accountId)?.groupIds.get(this.instanceId)?.get(groupId);
    if (!entry) {
      return {
        code: 2,
        result: "identifier_rejected",
        reason: `Group ID \`${groupId}\` does not exist in instance \`${this.instanceId}\``,
      };
    }
    // A Group ID created by a RAM user is that user's (and root's); one created by root is everyone's.
    if (entry.owner.kind === "root" || p.kind === "root") return undefined;
    if (entry.owner.userId === p.userId) return undefined;
    return {
      code: 5,
      result: "not_authorized",
      reason: `Group ID \`${groupId}\` belongs to another RAM user; only its creator and the account may use it`,
    };
  }

  // ---------------------------------------------------------------------------
  // PUBLISH

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const s = client ? (client as unknown as ClientInternals)[SESSION] : undefined;
    if (s === undefined || client === null) {
      // A will of a session this edge does not know (aedes republishing an old broker's wills).
      this.#metrics.decision(STAGE.publish, RESULT.Refused);
      done(new Error("no session"));
      return;
    }
    const isWill = packet === internals(client).will;
    const topic = packet.topic;
    // Hot path: a remembered allow (see AllowMemo) for a plain, valid topic.
    const bit = 1 << ((packet.qos | 0) * 2 + (packet.retain ? 1 : 0));
    // A remembered allow drawn for the decision log takes the full path below.
    let drawn = false;
    if (!s.revoked && !this.#failClosed && !isWill) {
      const t = s.topics.get(topic);
      if (t !== undefined && t.plain === topic && ((s.memo.pub.get(t) ?? 0) & bit) !== 0) {
        drawn = this.#drawAllow?.() === true;
        if (!drawn) {
          this.#metrics.decisions[STAGE.publish * 4]!++;
          packet.topic = t.internal;
          done(null);
          return;
        }
      }
    }
    const stage: Stage = isWill ? "will" : "publish";
    const bad = invalidTopicName(topic);
    if (bad) {
      this.#refused(stage, s, "mq:PUB", String(topic), bad);
      this.#refusePublish(packet, isWill, bad, done);
      return;
    }
    if (s.revoked || this.#failClosed) {
      const why = s.revoked ? "session revoked" : "fail-closed";
      this.#refused(stage, s, "mq:PUB", topic, why);
      this.#refusePublish(packet, isWill, why, done);
      return;
    }
    const t = s.topics.get(topic)!;
    if (this.#requireTopics && !this.#parentExists(s, t.parent)) {
      const why = `parent topic \`${t.parent}\` does not exist in instance \`${this.instanceId}\``;
      this.#refused(stage, s, "mq:PUB", t.arn, why);
      this.#refusePublish(packet, isWill, why, done);
      return;
    }
    const ctx = s.messageContexts[(packet.qos | 0) * 2 + (packet.retain ? 1 : 0)]!;
    const d = this.#feed.projection.authorize(s.principal, "mq:PUB", t.arn, ctx);
    this.#count(STAGE[stage], d);
    if (d.decision === "Allow") {
      this.#allowed(s, d, ctx, drawn);
      if (!isWill && this.#memoUsable(s)) AllowMemo.remember(s.memo.pub, t, bit);
      // Route (and retain, and queue) it in the account's own namespace.
      packet.topic = t.internal;
      done(null);
      return;
    }
    this.#denied(stage, s, d, ctx);
    this.#refusePublish(packet, isWill, d.message ?? "publish denied", done);
  }

  /** `drop`: acknowledge per QoS and never route; `disconnect` (and wills): an error, which closes / skips. */
  #refusePublish(
    packet: PublishPacket,
    isWill: boolean,
    why: string,
    done: (err?: Error | null) => void,
  ): void {
    if (isWill || !this.#dropRefused) {
      done(new Error(why));
      return;
    }
    DROPPED.add(packet);
    done(null);
  }

  /** May the allow memo be used for this session now? (Computed once after each clear.) */
  #memoUsable(s: Session): boolean {
    if (s.memo.usable === undefined) {
      s.memo.usable =
        this.#opts.logAllows !== true && !referencesCurrentTime(this.#feed.projection, s.principal);
    }
    return s.memo.usable;
  }

  #parentExists(s: Session, parent: string): boolean {
    return (
      this.#feed.projection.account(s.principal.accountId)?.topics.get(this.instanceId)?.has(parent) === true
    );
  }

  // ---------------------------------------------------------------------------
  // SUBSCRIBE

  #authorizeSubscribe(
    client: Client,
    sub: Subscription,
    done: (err: Error | null, sub?: Subscription | null) => void,
  ): void {
    const s = internals(client)[SESSION];
    // A restored subscription (persistent session) arrives in its internal form already.
    const t = s ? this.#subscribeAllowed(s, sub.topic, sub.qos, "subscribe") : undefined;
    if (t === undefined) {
      // A persistent session's stored subscription that is no longer allowed: forget it for good.
      if (sub.topic.charCodeAt(0) === 0 && !internals(client).clean) {
        (this.broker as unknown as { persistence: Persistence }).persistence
          .removeSubscriptions(client, [sub.topic])
          .catch(() => {});
      }
      done(null, null); // SUBACK 0x80 for this filter [MQTT-3.9.3]
      return;
    }
    sub.topic = t.internal;
    done(null, sub);
  }

  /** The filter's entry when it is allowed for the session now, else undefined. Counts and reports the decision. */
  #subscribeAllowed(
    s: Session,
    filter: string,
    qos: number,
    stage: "subscribe" | "recheck",
  ): TopicEntry | undefined {
    const t = s.topics.get(filter);
    if (t === undefined || t.plain.includes("\u0000")) {
      this.#refused(
        stage,
        s,
        "mq:SUB",
        JSON.stringify(filter),
        "topic filter contains U+0000 [MQTT-4.7.3-2]",
      );
      return undefined;
    }
    if (t.plain.charCodeAt(0) === 36) {
      this.#refused(
        stage,
        s,
        "mq:SUB",
        t.plain,
        "`$` topics (`$SYS/…`) are reserved to the broker [MQTT-4.7.2]",
      );
      return undefined;
    }
    if (s.revoked || this.#failClosed) {
      this.#refused(stage, s, "mq:SUB", t.plain, s.revoked ? "session revoked" : "fail-closed");
      return undefined;
    }
    const wildParent = t.parent === "+" || t.parent === "#";
    if (this.#requireTopics && !wildParent && !this.#parentExists(s, t.parent)) {
      this.#refused(
        stage,
        s,
        "mq:SUB",
        t.arn,
        `parent topic \`${t.parent}\` does not exist in instance \`${this.instanceId}\``,
      );
      return undefined;
    }
    const ctx = s.subscribeContexts[Math.min(Math.max(qos | 0, 0), 2)]!;
    const d = this.#feed.projection.authorize(s.principal, "mq:SUB", t.arn, ctx);
    this.#count(STAGE[stage], d);
    if (d.decision === "Allow") {
      if (stage === "subscribe") this.#allowed(s, d, ctx);
      return t;
    }
    this.#denied(stage, s, d, ctx);
    return undefined;
  }

  // ---------------------------------------------------------------------------
  // Delivery (hot path: synchronous, memory only, no allocation on an allow)

  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const s = (client as unknown as ClientInternals)[SESSION];
    if (s === undefined || s.revoked || this.#failClosed) {
      this.#metrics.decision(STAGE.deliver, RESULT.Refused);
      return null;
    }
    // Internal (namespaced) topic, or its plain form for a queued packet already rewritten.
    const t = s.topics.get(packet.topic);
    // `$SYS/…` of the broker, or (impossible by construction) another account's topic.
    if (t === undefined || t.plain.charCodeAt(0) === 36) {
      this.#metrics.decision(STAGE.deliver, RESULT.Refused);
      return null;
    }
    const index = (packet.qos | 0) * 2 + (packet.retain ? 1 : 0);
    const bit = 1 << index;
    // A remembered allow is answered here unless it is drawn for the decision log.
    const remembered = ((s.memo.sub.get(t) ?? 0) & bit) !== 0;
    const drawn = remembered && this.#drawAllow?.() === true;
    if (!remembered || drawn) {
      if (this.#requireTopics && !this.#parentExists(s, t.parent)) {
        this.#metrics.decision(STAGE.deliver, RESULT.Refused);
        return null;
      }
      const ctx = s.messageContexts[index]!;
      const d = this.#feed.projection.authorize(s.principal, "mq:SUB", t.arn, ctx);
      if (d.decision !== "Allow") {
        this.#count(STAGE.deliver, d);
        this.#forwardDenied(s, t.plain, d, ctx);
        return null;
      }
      this.#allowed(s, d, ctx, drawn);
      if (this.#memoUsable(s)) AllowMemo.remember(s.memo.sub, t, bit);
    }
    this.#metrics.decisions[STAGE.deliver * 4]!++;
    // The client sees its own topic names. (aedes downgrades QoS by looking the topic up in the
    // client's subscriptions; they are keyed by internal names, so do it here [MQTT-3.8.4-6].)
    if (packet.qos > 0) {
      const sub = (client as unknown as ClientInternals).subscriptions[t.internal];
      if (sub !== undefined && sub.qos < packet.qos) packet.qos = sub.qos as 0 | 1 | 2;
    }
    packet.topic = t.plain;
    return packet;
  }

  #forwardDenied(s: Session, topic: string, d: Decision, ctx: RequestContext): void {
    this.#sink(s, d, ctx);
    const at = Date.now();
    const seen = s.forwardLog.get(topic);
    if (seen && at - seen.at < this.#forwardLogMs) {
      seen.suppressed++;
      return;
    }
    if (s.forwardLog.size >= 256) s.forwardLog.clear();
    s.forwardLog.set(topic, { at, suppressed: 0 });
    this.#logDenial("deliver", s, d, seen && seen.suppressed > 0 ? { suppressed: seen.suppressed } : {});
  }

  // ---------------------------------------------------------------------------
  // Revocation

  #onApplied(position: number, affected: Affected): void {
    if (this.#sessions.all.size === 0) return;
    const check = new Set<Session>();
    for (const p of affected.principals) for (const s of this.#sessions.byPrincipal(p) ?? []) check.add(s);
    for (const k of affected.accessKeys) for (const s of this.#sessions.byAccessKey(k) ?? []) check.add(s);
    for (const r of affected.resources) {
      // `topic:<acct>/<inst>/<topic>`: sessions subscribed under that parent topic;
      // `gid:<acct>/<inst>/<gid>`: sessions using that Group ID.
      const colon = r.indexOf(":");
      const kind = r.slice(0, colon);
      const rest = r.slice(colon + 1);
      const s1 = rest.indexOf("/");
      const s2 = rest.indexOf("/", s1 + 1);
      if (s1 < 0 || s2 < 0 || rest.slice(s1 + 1, s2) !== this.instanceId) continue;
      const name = rest.slice(s2 + 1);
      for (const s of this.#sessions.byAccount(rest.slice(0, s1)) ?? []) {
        if (kind === "gid" ? s.groupId === name : this.#subscribedUnder(s, name)) check.add(s);
      }
    }
    if (affected.accessKeys.size > 0) this.#opts.credentials.forget(affected.accessKeys);
    // INVARIANT (AllowMemo): clear exactly when the projection invalidates the principal, and when
    // the account's parent topics change.
    for (const s of check) s.memo.clear();
    for (const r of affected.resources) {
      if (!r.startsWith("topic:")) continue;
      const acct = r.slice(6, r.indexOf("/"));
      for (const s of this.#sessions.byAccount(acct) ?? []) s.memo.clear();
    }
    if (check.size === 0) return;
    const decidedAt = now();
    for (const s of check) {
      if (s.revoked) continue;
      this.#metrics.revocationChecks++;
      try {
        this.#recheck(s, position, decidedAt);
      } catch (err) {
        // Never leave a session running on a check that failed half-way.
        this.#disconnect(s, `re-check failed: ${String(err)}`, position, decidedAt);
      }
    }
  }

  /** Has the session a subscription below this parent topic? */
  #subscribedUnder(s: Session, parent: string): boolean {
    for (const f of Object.keys(internals(s.client).subscriptions))
      if (s.topics.get(f)?.parent === parent) return true;
    return false;
  }

  #recheck(s: Session, position: number, decidedAt: number): void {
    const projection = this.#feed.projection;
    const cred = this.#opts.credentials.resolve(s.accessKeyId);
    if (!cred) {
      this.#disconnect(s, `AccessKey \`${s.accessKeyId}\` was deleted`, position, decidedAt);
      return;
    }
    if (principalKey(cred.principal) !== s.principalKey) {
      this.#disconnect(s, "AccessKey changed owner", position, decidedAt);
      return;
    }
    if (!cred.usable || !projection.isActive(s.principal)) {
      this.#disconnect(
        s,
        `AccessKey \`${s.accessKeyId}\` is inactive or its user is disabled or deleted`,
        position,
        decidedAt,
      );
      return;
    }
    const gid = this.#groupIdProblem(s.principal, s.groupId);
    if (gid) {
      this.#disconnect(s, gid.reason, position, decidedAt);
      return;
    }
    const d = projection.authorize(
      s.principal,
      "mq:MqttInstanceAccess",
      mqInstanceArn(s.scope, this.instanceId),
      s.connectContext,
    );
    this.#count(STAGE.recheck, d);
    if (d.decision !== "Allow") {
      this.#denied("recheck", s, d, s.connectContext);
      this.#disconnect(s, d.message ?? "instance access revoked", position, decidedAt);
      return;
    }
    const subs = internals(s.client).subscriptions;
    for (const filter of Object.keys(subs)) {
      if (s.removing.has(filter)) continue;
      if (this.#subscribeAllowed(s, filter, subs[filter]!.qos, "recheck") === undefined) {
        this.#removeSubscription(s, filter, position, decidedAt);
      }
    }
  }

  #removeSubscription(s: Session, filter: string, position: number, decidedAt: number): void {
    const client = s.client;
    const ci = internals(client);
    s.removing.add(filter);
    this.#metrics.revocations.unsubscribe++;
    const plain = s.topics.get(filter)?.plain ?? filter;
    const reason = `\`mq:SUB\` on \`${plain}\` is no longer allowed`;
    this.#log.warn(
      { clientId: s.clientId, principal: s.principalKey, filter: plain, position },
      "revocation: subscription removed",
    );
    // A persistent session must not get it back on reconnect, nor queue for it offline.
    if (!ci.clean) {
      (this.broker as unknown as { persistence: Persistence }).persistence
        .removeSubscriptions(client, [filter])
        .catch(() => {});
    }
    // No messageId: aedes removes the subscription without sending an UNSUBACK.
    client.unsubscribe({ unsubscriptions: [filter] } as never, () => {
      s.removing.delete(filter);
      this.#opts.onRevocation?.({
        kind: "unsubscribe",
        clientId: s.clientId,
        principal: s.principalKey,
        filter: plain,
        reason,
        position,
        decidedAt,
        completedAt: now(),
      });
    });
  }

  #disconnect(s: Session, reason: string, position: number, decidedAt: number): void {
    if (s.revoked) return;
    s.revoked = true;
    this.#metrics.revocations.disconnect++;
    this.#log.warn(
      { clientId: s.clientId, principal: s.principalKey, accessKeyId: s.accessKeyId, reason, position },
      "revocation: session disconnected",
    );
    // MQTT 3.1.1 has no server DISCONNECT: close the network connection [MQTT-3.14].
    s.client.close(() => {
      this.#sessions.remove(s);
      this.#opts.onRevocation?.({
        kind: "disconnect",
        clientId: s.clientId,
        principal: s.principalKey,
        reason,
        position,
        decidedAt,
        completedAt: now(),
      });
    });
  }

  // ---------------------------------------------------------------------------
  // Reporting

  #count(stage: number, d: Decision): void {
    this.#metrics.decision(
      stage,
      d.decision === "Allow"
        ? RESULT.Allow
        : d.decision === "ExplicitDeny"
          ? RESULT.ExplicitDeny
          : RESULT.ImplicitDeny,
    );
  }

  #record(s: Session, d: Decision, context: RequestContext): DecisionRecord {
    return {
      time: nowIso(),
      edgeId: this.edgeId,
      protocol: "mqtt",
      principal: s.principalKey,
      action: d.action,
      resource: d.resource,
      context: recordContext(context),
      decision: d.decision,
      decidingStatements: d.decidingStatements,
      position: this.#feed.position,
      clientId: s.clientId,
    };
  }

  #sink(s: Session, d: Decision, context: RequestContext): void {
    const sink = this.#opts.onDecision;
    if (!sink) return;
    try {
      sink(this.#record(s, d, context));
    } catch {
      this.#metrics.sinkErrors++;
    }
  }

  /** An allow: to the decision log per `logAllows` (`drawn`: the memo path already drew it). */
  #allowed(s: Session, d: Decision, context: RequestContext, drawn = false): void {
    if (this.#opts.logAllows === true || drawn || this.#drawAllow?.() === true) this.#sink(s, d, context);
  }

  /** A policy denial: decision record and one log line. */
  #denied(stage: Stage, s: Session, d: Decision, context: RequestContext): void {
    this.#sink(s, d, context);
    this.#logDenial(stage, s, d, {});
  }

  #logDenial(stage: Stage, s: Session, d: Decision, extra: Record<string, unknown>): void {
    this.#log.warn(
      {
        clientId: s.clientId,
        principal: s.principalKey,
        principalName: this.#feed.projection.displayName(s.principal),
        action: d.action,
        resource: d.resource,
        stage,
        decision: d.decision,
        reason: d.reason,
        statement: d.decidingStatements[0] ? statementLabel(d.decidingStatements[0]) : undefined,
        decidingStatements: d.decidingStatements.map(statementLabel),
        position: this.#feed.position,
        message: d.message,
        ...extra,
      },
      "mqtt denied",
    );
  }

  /** A refusal by an edge rule (not a policy decision: no decision record, since audit could not re-decide it). */
  #refused(stage: Stage, s: Session, action: string, resource: string, reason: string): void {
    this.#metrics.decision(STAGE[stage], RESULT.Refused);
    this.#log.warn(
      {
        clientId: s.clientId,
        principal: s.principalKey,
        action,
        resource,
        stage,
        decision: "Refused" satisfies Result,
        reason,
        position: this.#feed.position,
      },
      "mqtt denied",
    );
  }
}

/**
 * Does any policy that applies to this principal mention `acs:CurrentTime`?
 * (Conservative: a mention anywhere in a document disables the allow memo.)
 */
function referencesCurrentTime(projection: Projection, p: PrincipalRef): boolean {
  if (p.kind === "root") return false;
  const a = projection.account(p.accountId);
  const u = a?.users.get(p.userId);
  if (!a || !u) return false;
  const refs = new Set(u.policies);
  for (const g of u.groups) for (const r of a.groups.get(g)?.policies ?? []) refs.add(r);
  for (const ref of refs) {
    const colon = ref.indexOf(":");
    const type = ref.slice(0, colon);
    const name = ref.slice(colon + 1);
    const custom = type === "Custom" ? a.policies.get(name) : undefined;
    const doc =
      type === "System"
        ? getSystemPolicy(name)?.document
        : custom?.versions.get(custom.defaultVersion)?.document;
    if (doc === undefined || JSON.stringify(doc).toLowerCase().includes("acs:currenttime")) return true;
  }
  return false;
}

/** Why a PUBLISH topic name is invalid, or undefined ([MQTT-4.7.1-1], [MQTT-4.7.3-1], [MQTT-4.7.3-2]). */
function invalidTopicName(topic: unknown): string | undefined {
  if (typeof topic !== "string") return "no topic name";
  if (topic.length === 0) return "empty topic name [MQTT-4.7.3-1]";
  if (topic.includes("\u0000")) return "topic name contains U+0000 [MQTT-4.7.3-2]";
  if (topic.includes("+") || topic.includes("#"))
    return "wildcards are not allowed in a topic name [MQTT-4.7.1-1]";
  if (topic.charCodeAt(0) === 36) return "`$` topics (`$SYS/…`) are reserved to the broker [MQTT-4.7.2]";
  return undefined;
}
