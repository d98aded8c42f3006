/**
 * One client connection through the edge: the AMQP 0-9-1 server side towards
 * the client (handshake, authentication, vhost check), the client side towards
 * the upstream RabbitMQ (service credentials), and the relay between them.
 *
 * Relay rules:
 * - Every client method is decoded and checked (rules.ts) before it is
 *   forwarded; forwarded frames are the client's own octets. A denial closes
 *   the channel with 403 towards the client and closes the same channel
 *   upstream, so nothing of the denied method reaches the upstream.
 * - Content header and body frames are never decoded beyond the body size;
 *   they are forwarded as slices of the chunk they came in.
 * - Delivery tags are tracked per channel (basic.deliver, basic.get-ok) so an
 *   ack/nack/reject is checked against the queue its delivery came from.
 * - Heartbeats are per hop: the edge answers the client's and the upstream's
 *   heartbeat expectations itself (AMQP 0-9-1 §4.2.7) and forwards none.
 */
import type { Socket } from "node:net";
import net from "node:net";
import tls from "node:tls";
import type { CredentialResolver, DecisionSink, LiveProjection } from "@portcullis/feed";
import { clockContext, extendContext, nowIso, recordContext } from "@portcullis/feed";
import type { ArnScope, Decision, RequestContext } from "@portcullis/policy";
import { type PrincipalRef, principalKey } from "@portcullis/projection";
import type { Logger } from "pino";
import {
  AuthError,
  parsePassword,
  parseSaslResponse,
  parseUsername,
  SASL_MECHANISMS,
  verifyPassword,
} from "./auth.ts";
import {
  FRAME_BODY,
  FRAME_HEADER,
  FRAME_HEARTBEAT,
  FRAME_METHOD,
  FRAME_MIN_SIZE,
  FRAME_OVERHEAD,
  PROTOCOL_HEADER,
  ReplyCode,
  replyCodeName,
} from "./codec/constants.ts";
import { CodecError, type FieldTable, truncateShortstr } from "./codec/fields.ts";
import { FrameReader } from "./codec/frames.ts";
import { type DecodedMethod, decodeMethod, encodeMethodFrame, HEARTBEAT_FRAME } from "./codec/methods.ts";
import { contentHeaders, senderSelectedKeys } from "./codec/properties.ts";
import { methodKey } from "./codec/spec.ts";
import type { EdgeMetrics } from "./metrics.ts";
import { Output } from "./output.ts";
import {
  type AmqpOp,
  type Check,
  ConnectionRules,
  deadLetterExchange,
  settleAction,
  stringArgument,
} from "./rules.ts";

/** Where the edge connects upstream, with its service credentials. */
export interface UpstreamTarget {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Set for `amqps://`: TLS to the node with these options (CA, client certificate…). */
  tls?: tls.ConnectionOptions;
}

/**
 * Open a socket to an upstream node, TCP or (amqps) TLS with the node's host
 * name checked against its certificate; `onOpen` runs once it can carry AMQP.
 */
export function openUpstream(t: UpstreamTarget, onOpen: () => void): Socket {
  if (!t.tls) {
    const s = net.connect({ host: t.host, port: t.port });
    s.once("connect", onOpen);
    return s;
  }
  const s = tls.connect({
    host: t.host,
    port: t.port,
    ...(net.isIP(t.host) === 0 ? { servername: t.host } : {}),
    ...t.tls,
  });
  s.once("secureConnect", onOpen);
  return s;
}

/** What every connection of one edge shares. */
export interface EdgeCore {
  readonly edgeId: string;
  readonly instanceId: string;
  /** The account owning the instance; other accounts are refused at login (undefined: any account). */
  readonly accountId: string | undefined;
  readonly region: string;
  readonly maxClockSkewMs: number;
  readonly handshakeTimeoutMs: number;
  readonly closeTimeoutMs: number;
  /** Heartbeat proposed to clients (seconds; 0 = none). */
  readonly heartbeat: number;
  /** channel-max and frame-max proposed to clients (already within the upstream's limits). */
  readonly channelMax: number;
  readonly frameMax: number;
  readonly serverProperties: FieldTable;
  /**
   * The upstream nodes (a RabbitMQ cluster, or one broker) in the order a new
   * connection tries them: each call starts one node further (round robin), and
   * a node that cannot be reached is skipped for the next.
   */
  upstreamOrder(): readonly UpstreamTarget[];
  /** How long a connection waits for an upstream node's TCP connect before trying the next (ms). */
  readonly upstreamConnectTimeoutMs: number;
  readonly feed: LiveProjection;
  readonly credentials: CredentialResolver;
  readonly metrics: EdgeMetrics;
  readonly logger: Logger;
  readonly onDecision: DecisionSink | undefined;
  readonly logAllows: boolean | (() => boolean);
  /** True while the feed is fail-closed: every decision is a denial. */
  failClosed(): boolean;
  /** Index the connection by principal and AccessKey once authenticated. */
  attach(conn: EdgeConnection): void;
  /** Forget the connection (both sockets closed). */
  detach(conn: EdgeConnection): void;
}

/** A snapshot of a connection, for `AmqpEdge.connections()` and health pages. */
export interface ConnectionInfo {
  id: string;
  remoteAddress: string;
  phase: string;
  principal?: string;
  userName?: string;
  accessKeyId?: string;
  vhost?: string;
  channels: number;
  consumers: number;
}

const K = {
  START_OK: methodKey("connection.start-ok"),
  TUNE_OK: methodKey("connection.tune-ok"),
  OPEN: methodKey("connection.open"),
  CLOSE: methodKey("connection.close"),
  CLOSE_OK: methodKey("connection.close-ok"),
  UPDATE_SECRET: methodKey("connection.update-secret"),
  START: methodKey("connection.start"),
  TUNE: methodKey("connection.tune"),
  OPEN_OK: methodKey("connection.open-ok"),
  BLOCKED: methodKey("connection.blocked"),
  UNBLOCKED: methodKey("connection.unblocked"),
  UPDATE_SECRET_OK: methodKey("connection.update-secret-ok"),
  CH_OPEN: methodKey("channel.open"),
  CH_CLOSE: methodKey("channel.close"),
  CH_CLOSE_OK: methodKey("channel.close-ok"),
  EX_DECLARE: methodKey("exchange.declare"),
  EX_DELETE: methodKey("exchange.delete"),
  EX_BIND: methodKey("exchange.bind"),
  EX_UNBIND: methodKey("exchange.unbind"),
  Q_DECLARE: methodKey("queue.declare"),
  Q_DECLARE_OK: methodKey("queue.declare-ok"),
  Q_BIND: methodKey("queue.bind"),
  Q_UNBIND: methodKey("queue.unbind"),
  Q_PURGE: methodKey("queue.purge"),
  Q_DELETE: methodKey("queue.delete"),
  B_PUBLISH: methodKey("basic.publish"),
  B_CONSUME: methodKey("basic.consume"),
  B_CONSUME_OK: methodKey("basic.consume-ok"),
  B_CANCEL: methodKey("basic.cancel"),
  B_CANCEL_OK: methodKey("basic.cancel-ok"),
  B_GET: methodKey("basic.get"),
  B_GET_OK: methodKey("basic.get-ok"),
  B_GET_EMPTY: methodKey("basic.get-empty"),
  B_DELIVER: methodKey("basic.deliver"),
  B_RETURN: methodKey("basic.return"),
  B_ACK: methodKey("basic.ack"),
  B_NACK: methodKey("basic.nack"),
  B_REJECT: methodKey("basic.reject"),
  B_RECOVER: methodKey("basic.recover"),
  B_RECOVER_ASYNC: methodKey("basic.recover-async"),
  TX_SELECT: methodKey("tx.select"),
  TX_COMMIT: methodKey("tx.commit"),
  TX_ROLLBACK: methodKey("tx.rollback"),
} as const;

/** Content state of a channel (client side): none, header expected, or body octets still expected. */
const EXPECT_NONE = -2;
const EXPECT_HEADER = -1;

/** A consumer on a channel. */
interface Consumer {
  tag: string;
  queue: string;
  noAck: boolean;
  /** Cancelled by the edge after a revocation: deliveries for it are requeued upstream. */
  revoked: boolean;
  /** A no-ack consumer consumed upstream with acks the edge sends itself (see B_CONSUME). */
  edgeAcks: boolean;
}

/** A basic.consume awaiting its consume-ok. */
interface PendingConsume {
  queue: string;
  noAck: boolean;
  edgeAcks: boolean;
  /** The connection's revocation epoch when it was checked. */
  epoch: number;
}

/** A client frame held back until the channel can take it. */
type HeldFrame =
  | { type: number; buf: Buffer; start: number; end: number }
  | { type: typeof FRAME_BODY; pieces: Buffer[]; size: number };

/** The edge's view of one channel. */
interface Channel {
  id: number;
  /**
   * Client side: `open`; `closing-edge` (the edge sent channel.close, awaits the
   * client's close-ok); `closing-client` (the client sent channel.close, the
   * upstream's close-ok is awaited); `closing-up` (the upstream sent
   * channel.close, the client's close-ok is awaited); `closed` (only the
   * upstream side is still closing).
   */
  client: "open" | "closing-edge" | "closing-client" | "closing-up" | "closed";
  /** The edge sent channel.close upstream and awaits its close-ok (swallowed). */
  upClosing: boolean;
  /** Client frames held until the channel can take them (a pending queue name, an upstream close). */
  held: HeldFrame[] | undefined;
  heldBytes: number;
  /** Client content state: EXPECT_NONE, EXPECT_HEADER or body octets remaining. */
  expect: number;
  /** An allowed basic.publish held until its content header is checked too (CC/BCC routing keys). */
  pendingPublish: { buf: Buffer; start: number; end: number; exchange: string } | undefined;
  /** Whether the upstream content frames now arriving are forwarded to the client. */
  upForward: boolean;
  consumers: Map<string, Consumer>;
  pendingConsumes: PendingConsume[];
  /** no-wait consumes with a server-generated tag: bound to the first delivery with an unknown tag. */
  anonymousConsumes: PendingConsume[];
  /** Origins of basic.cancel requests awaiting cancel-ok, in order. */
  pendingCancels: ("edge" | "client")[];
  pendingGets: { queue: string; noAck: boolean }[];
  /** Ack-required deliveries not yet settled: delivery tag → queue (ascending tag order). */
  deliveries: Map<number, string>;
  /** The queue RabbitMQ substitutes for an empty queue name (AMQP 0-9-1 queue.declare rule; undefined = none). */
  lastQueue: string | undefined;
  /** The last declare was server-named and its declare-ok has not come: `lastQueue` is not known yet. */
  lastQueuePending: boolean;
  declareSeq: number;
  /** Declare-oks awaited: the declare sequence number of each. */
  declareOks: number[];
  tx: boolean;
  /** Acks settled in the open transaction (restored on rollback). */
  txSettled: [number, string][];
  /** Frames of the edge's own (basic.cancel, basic.reject, basic.ack) waiting for the end of a content the client is sending upstream on this channel. */
  afterContent: Buffer[] | undefined;
}

const consumerOf = (tag: string, p: PendingConsume): Consumer => ({
  tag,
  queue: p.queue,
  noAck: p.noAck,
  revoked: false,
  edgeAcks: p.edgeAcks,
});

const newChannel = (id: number): Channel => ({
  id,
  client: "open",
  upClosing: false,
  held: undefined,
  heldBytes: 0,
  expect: EXPECT_NONE,
  pendingPublish: undefined,
  upForward: false,
  consumers: new Map(),
  pendingConsumes: [],
  anonymousConsumes: [],
  pendingCancels: [],
  pendingGets: [],
  deliveries: new Map(),
  lastQueue: undefined,
  lastQueuePending: false,
  declareSeq: 0,
  declareOks: [],
  tx: false,
  txSettled: [],
  afterContent: undefined,
});

/** Held octets per channel beyond which the client socket is paused until release. */
const HELD_PAUSE_BYTES = 1 << 20;

type Phase = "header" | "start-ok" | "tune-ok" | "open" | "opening" | "running" | "closing" | "closed";
type UpPhase = "none" | "connecting" | "start" | "tune" | "open-ok" | "running" | "closing" | "closed";

let connectionCounter = 0;

/** Normalise an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) to IPv4. */
function sourceIp(addr: string | undefined): string {
  if (!addr) return "";
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

/** A client connection and its upstream twin. */
export class EdgeConnection {
  readonly id: string;
  readonly remoteAddress: string;
  readonly #core: EdgeCore;
  readonly #client: Socket;
  readonly #secure: boolean;
  #phase: Phase = "header";
  #closeOrigin: "edge" | "client" | "upstream" | undefined;
  #headerBuf: Buffer = Buffer.alloc(0);
  readonly #reader: FrameReader;
  readonly #toClient: Output;
  #up: Socket | undefined;
  /** The upstream node this connection uses (or is connecting to). */
  #upTarget: UpstreamTarget | undefined;
  #upPhase: UpPhase = "none";
  #upReader: FrameReader | undefined;
  #toUp: Output | undefined;
  #timers = new Set<NodeJS.Timeout>();
  #handshakeTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #clientRead = false;
  #clientMissed = 0;
  #upRead = false;
  #upMissed = 0;
  #clientEnded = false;
  #upEnded = false;

  // negotiated
  #channelMax = 0;
  #frameMax = FRAME_MIN_SIZE;
  #heartbeat = 0;
  #clientProperties: FieldTable = {};
  #caps: FieldTable = {};

  // identity
  #principal: PrincipalRef | undefined;
  #principalKey: string | undefined;
  #accessKeyId: string | undefined;
  #userName: string | undefined;
  #mechanism = "PLAIN";
  #vhost = "";
  #scope: ArnScope = { region: "", accountId: "" };
  #context: RequestContext = {};
  #rules!: ConnectionRules;
  /** Bumped on every feed event that affects this connection's principal or key. */
  #epoch = 0;
  #recheckPending = false;

  readonly #channels = new Map<number, Channel>();
  #heldPaused = 0;

  constructor(core: EdgeCore, client: Socket, secure: boolean) {
    this.#core = core;
    this.#client = client;
    this.#secure = secure;
    this.id = `${core.edgeId}#${++connectionCounter}`;
    this.remoteAddress = sourceIp(client.remoteAddress);
    this.#reader = new FrameReader(
      {
        frame: (type, ch, buf, start, end) => this.#onClientFrame(type, ch, buf, start, end),
        splitBody: (ch, pieces, size) => this.#onClientSplitBody(ch, pieces, size),
        error: (code, text) => this.#protocolError(code, text),
      },
      core.frameMax,
    );
    this.#toClient = new Output(client, () => this.#blocked(client, this.#up));
    client.setNoDelay(true);
    client.on("data", (chunk: Buffer) => this.#onClientData(chunk));
    client.on("error", (err) =>
      this.#core.logger.debug({ conn: this.id, err: err.message }, "client socket error"),
    );
    client.on("close", () => this.#onClientClosed());
    this.#handshakeTimer = this.#timer(core.handshakeTimeoutMs, () => {
      if (this.#phase === "running" || this.#phase === "closing" || this.#phase === "closed") return;
      this.#core.logger.info({ conn: this.id, phase: this.#phase }, "handshake timed out");
      if (this.#phase === "header") this.#destroy();
      else this.#closeByEdge(ReplyCode.CONNECTION_FORCED, "CONNECTION_FORCED - handshake timed out");
    });
  }

  /** The connection's principal key (`<acct>` or `<acct>/<userId>`) once authenticated. */
  get principalKey(): string | undefined {
    return this.#principalKey;
  }

  /** The AccessKeyId the client logged in with. */
  get accessKeyId(): string | undefined {
    return this.#accessKeyId;
  }

  /** What the connection is doing now. */
  info(): ConnectionInfo {
    let consumers = 0;
    for (const c of this.#channels.values()) consumers += c.consumers.size;
    return {
      id: this.id,
      remoteAddress: this.remoteAddress,
      phase: this.#phase,
      ...(this.#principalKey !== undefined ? { principal: this.#principalKey } : {}),
      ...(this.#userName !== undefined ? { userName: this.#userName } : {}),
      ...(this.#accessKeyId !== undefined ? { accessKeyId: this.#accessKeyId } : {}),
      ...(this.#phase === "running" ? { vhost: this.#vhost } : {}),
      channels: this.#channels.size,
      consumers,
    };
  }

  // ---------------------------------------------------------------------------
  // Timers and sockets

  #timer(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.#timers.add(t);
    return t;
  }

  /** A full socket buffer: stop reading from the side that feeds it until it drains. */
  #blocked(dest: Socket, source: Socket | undefined): void {
    if (!source || source.isPaused()) return;
    source.pause();
    dest.once("drain", () => {
      if (!source.destroyed) source.resume();
    });
  }

  #destroy(): void {
    this.#client.destroy();
    this.#up?.destroy();
  }

  #onClientClosed(): void {
    this.#clientEnded = true;
    this.#reader.stop();
    if (this.#up && !this.#upEnded) {
      if (this.#upPhase === "running" && this.#toUp) {
        // The client went away: close upstream politely so it requeues what was unacked.
        this.#toUp.write(
          encodeMethodFrame(0, "connection.close", { replyCode: 200, replyText: "client connection closed" }),
        );
        this.#toUp.flush();
        this.#upPhase = "closing";
        this.#timer(this.#core.closeTimeoutMs, () => this.#up?.destroy());
      } else {
        this.#up.destroy();
      }
    }
    this.#maybeDone();
  }

  #onUpClosed(): void {
    this.#upEnded = true;
    this.#upReader?.stop();
    const was = this.#upPhase;
    this.#upPhase = "closed";
    if (!this.#clientEnded) {
      if (was === "running") {
        this.#closeByEdge(
          ReplyCode.CONNECTION_FORCED,
          "CONNECTION_FORCED - the upstream broker closed the connection",
        );
      } else if (this.#phase === "opening") {
        this.#upstreamFailed("the upstream broker closed the connection during the handshake");
      } else if (this.#phase === "closing") {
        // closing anyway; make sure the client is not left waiting for a close-ok from upstream
        if (this.#closeOrigin === "client") {
          this.#toClient.write(encodeMethodFrame(0, "connection.close-ok"));
          this.#endClient();
        }
      }
    }
    this.#maybeDone();
  }

  #maybeDone(): void {
    if (this.#phase === "closed") return;
    if (this.#clientEnded && (this.#up === undefined || this.#upEnded)) {
      this.#phase = "closed";
      for (const t of this.#timers) clearTimeout(t);
      this.#timers.clear();
      if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
      this.#core.detach(this);
    }
  }

  #endClient(): void {
    this.#toClient.flush();
    this.#reader.stop();
    this.#client.end();
    this.#timer(this.#core.closeTimeoutMs, () => this.#client.destroy());
  }

  #endUp(): void {
    if (!this.#up) return;
    this.#toUp?.flush();
    this.#upReader?.stop();
    this.#upPhase = "closed";
    this.#up.end();
    const up = this.#up;
    this.#timer(this.#core.closeTimeoutMs, () => up.destroy());
  }

  // ---------------------------------------------------------------------------
  // Closing

  /** A protocol error by the client: connection.close with `code` (501–505 …). */
  #protocolError(code: number, text: string, classId = 0, methodId = 0): void {
    if (this.#phase === "closing" || this.#phase === "closed") return;
    this.#core.metrics.protocolErrors.labels(String(code)).inc();
    this.#core.logger.info({ conn: this.id, code, text }, "amqp protocol error");
    if (this.#phase !== "running") this.#core.metrics.connectionsTotal.labels("protocol_error").inc();
    this.#closeByEdge(code, text, classId, methodId);
  }

  /**
   * The edge closes the connection: connection.close to the client (and to the
   * upstream, if open). The client's close-ok, or the close timeout, ends it.
   */
  #closeByEdge(code: number, text: string, classId = 0, methodId = 0): void {
    if (this.#phase === "closing" || this.#phase === "closed") return;
    const framingBroken = this.#reader.stopped;
    this.#phase = "closing";
    this.#closeOrigin = "edge";
    this.#toClient.write(
      encodeMethodFrame(0, "connection.close", {
        replyCode: code,
        replyText: truncateShortstr(text),
        classId,
        methodId,
      }),
    );
    this.#toClient.flush();
    if (framingBroken) this.#endClient();
    else this.#timer(this.#core.closeTimeoutMs, () => this.#client.destroy());
    this.#closeUpstream(code === ReplyCode.CONNECTION_FORCED ? text : "client connection closed by the edge");
  }

  #closeUpstream(reason: string): void {
    if (!this.#up || this.#upEnded) return;
    if (this.#upPhase === "running" && this.#toUp) {
      this.#upPhase = "closing";
      this.#toUp.write(
        encodeMethodFrame(0, "connection.close", { replyCode: 200, replyText: truncateShortstr(reason) }),
      );
      this.#toUp.flush();
      const up = this.#up;
      this.#timer(this.#core.closeTimeoutMs, () => up.destroy());
    } else if (this.#upPhase !== "closing") {
      this.#up.destroy();
    }
  }

  /** Forced close after a revocation or shutdown: 320 CONNECTION_FORCED. */
  forceClose(text: string): void {
    if (this.#phase === "closing" || this.#phase === "closed") return;
    if (this.#phase === "header") {
      this.#destroy();
      return;
    }
    this.#closeByEdge(ReplyCode.CONNECTION_FORCED, `CONNECTION_FORCED - ${text}`);
  }

  /** Resolves when both sockets are closed. */
  closed(): Promise<void> {
    if (this.#phase === "closed") return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.#clientEnded && (this.#up === undefined || this.#upEnded)) resolve();
      };
      this.#client.once("close", check);
      this.#up?.once("close", check);
      check();
    });
  }

  // ---------------------------------------------------------------------------
  // Client → edge

  #onClientData(chunk: Buffer): void {
    this.#clientRead = true;
    if (this.#phase !== "header") {
      this.#reader.push(chunk);
      return;
    }
    const have = this.#headerBuf.length === 0 ? chunk : Buffer.concat([this.#headerBuf, chunk]);
    const n = Math.min(have.length, PROTOCOL_HEADER.length);
    if (have.subarray(0, n).compare(PROTOCOL_HEADER, 0, n) !== 0) {
      // AMQP 0-9-1 §4.2.2: answer an unsupported or garbled header with ours, then close.
      this.#core.metrics.connectionsTotal.labels("protocol_error").inc();
      this.#core.logger.info({ conn: this.id }, "bad protocol header");
      this.#phase = "closing";
      this.#closeOrigin = "edge";
      this.#reader.stop();
      this.#client.end(PROTOCOL_HEADER);
      this.#timer(this.#core.closeTimeoutMs, () => this.#client.destroy());
      return;
    }
    if (have.length < PROTOCOL_HEADER.length) {
      this.#headerBuf = have;
      return;
    }
    this.#headerBuf = Buffer.alloc(0);
    this.#phase = "start-ok";
    this.#toClient.write(
      encodeMethodFrame(0, "connection.start", {
        versionMajor: 0,
        versionMinor: 9,
        serverProperties: this.#core.serverProperties,
        mechanisms: SASL_MECHANISMS.join(" "),
        locales: "en_US",
      }),
    );
    if (have.length > PROTOCOL_HEADER.length) this.#reader.push(have.subarray(PROTOCOL_HEADER.length));
  }

  #decode(buf: Buffer, start: number, end: number): DecodedMethod | undefined {
    try {
      return decodeMethod(buf, start + 7, end - 1);
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      const classId = end - start >= 11 ? buf.readUInt16BE(start + 7) : 0;
      const methodId = end - start >= 11 ? buf.readUInt16BE(start + 9) : 0;
      this.#protocolError(e.code, `${replyCodeName(e.code)} - ${e.message}`, classId, methodId);
      return undefined;
    }
  }

  #onClientFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    switch (this.#phase) {
      case "running": {
        this.#runningFrame(type, ch, buf, start, end);
        return;
      }
      case "start-ok":
      case "tune-ok":
      case "open": {
        this.#handshakeFrame(type, ch, buf, start, end);
        return;
      }
      case "closing": {
        this.#closingClientFrame(type, ch, buf, start, end);
        return;
      }
      default:
        return;
    }
  }

  #onClientSplitBody(ch: number, pieces: Buffer[], size: number): void {
    if (this.#phase === "running") {
      this.#runningBody(ch, size, undefined, pieces);
      return;
    }
    if (this.#phase === "closing") return;
    this.#protocolError(
      ReplyCode.UNEXPECTED_FRAME,
      "UNEXPECTED_FRAME - content body frame during the handshake",
    );
  }

  // --- handshake (AMQP 0-9-1 §4.2.2, connection class)

  #handshakeFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    if (type === FRAME_HEARTBEAT) return;
    if (type !== FRAME_METHOD) {
      this.#protocolError(
        ReplyCode.UNEXPECTED_FRAME,
        "UNEXPECTED_FRAME - content frame during the handshake",
      );
      return;
    }
    const m = this.#decode(buf, start, end);
    if (!m) return;
    if (ch !== 0) {
      this.#protocolError(
        ReplyCode.CHANNEL_ERROR,
        `CHANNEL_ERROR - ${m.spec.name} on channel ${ch} before the connection is open`,
        m.spec.classId,
        m.spec.methodId,
      );
      return;
    }
    if (m.key === K.CLOSE) {
      this.#toClient.write(encodeMethodFrame(0, "connection.close-ok"));
      this.#phase = "closing";
      this.#closeOrigin = "client";
      this.#endClient();
      return;
    }
    const expected = { "start-ok": K.START_OK, "tune-ok": K.TUNE_OK, open: K.OPEN }[this.#phase as "open"];
    if (m.key !== expected) {
      this.#protocolError(
        ReplyCode.COMMAND_INVALID,
        `COMMAND_INVALID - expected connection.${this.#phase}, got ${m.spec.name}`,
        m.spec.classId,
        m.spec.methodId,
      );
      return;
    }
    if (m.key === K.START_OK) {
      this.#startOk(m);
      return;
    }
    if (m.key === K.TUNE_OK) {
      this.#tuneOk(m);
      return;
    }
    this.#open(m);
    return;
  }

  #startOk(m: DecodedMethod): void {
    const props = (m.args.clientProperties ?? {}) as FieldTable;
    this.#clientProperties = props;
    const caps = props.capabilities;
    this.#caps =
      caps && typeof caps === "object" && !Array.isArray(caps) && !Buffer.isBuffer(caps)
        ? (caps as FieldTable)
        : {};
    const mechanism = m.args.mechanism as string;
    this.#mechanism = mechanism;
    if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
      this.#protocolError(
        ReplyCode.COMMAND_INVALID,
        `COMMAND_INVALID - unknown authentication mechanism '${mechanism}' (offered: ${SASL_MECHANISMS.join(", ")})`,
        m.spec.classId,
        m.spec.methodId,
      );
      return;
    }
    try {
      this.#authenticate(mechanism, m.args.response as Buffer);
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      this.#authFailed(e);
      return;
    }
    this.#phase = "tune-ok";
    // Indexed from now on: a revocation during the rest of the handshake reaches it.
    this.#core.attach(this);
    this.#toClient.write(
      encodeMethodFrame(0, "connection.tune", {
        channelMax: this.#core.channelMax,
        frameMax: this.#core.frameMax,
        heartbeat: this.#core.heartbeat,
      }),
    );
  }

  #authenticate(mechanism: string, response: Buffer): void {
    const sasl = parseSaslResponse(mechanism, response);
    const user = parseUsername(sasl.username);
    this.#accessKeyId = user.accessKeyId;
    if (user.instanceId !== this.#core.instanceId) {
      throw new AuthError(
        `instance \`${user.instanceId}\` is not served here (this is \`${this.#core.instanceId}\`)`,
      );
    }
    parsePassword(sasl.password); // shape first: a clear message for a malformed password
    const cred = this.#core.credentials.resolve(user.accessKeyId);
    if (!cred) throw new AuthError("invalid credentials", `unknown AccessKeyId \`${user.accessKeyId}\``);
    if (!cred.usable || !this.#core.feed.projection.isActive(cred.principal)) {
      throw new AuthError(
        "invalid credentials",
        `AccessKey \`${user.accessKeyId}\` is inactive or its user disabled`,
      );
    }
    verifyPassword(cred.secret, sasl.password, Date.now(), this.#core.maxClockSkewMs);
    const owner = this.#core.accountId;
    if (owner !== undefined && cred.principal.accountId !== owner) {
      // No cross-account access (SPEC §2): the instance and its vhosts belong to one account.
      throw new AuthError(
        `instance \`${this.#core.instanceId}\` belongs to another account`,
        `principal of account ${cred.principal.accountId}, instance owned by ${owner}`,
      );
    }
    this.#principal = cred.principal;
    this.#principalKey = principalKey(cred.principal);
    this.#userName = cred.userName;
    this.#scope = { region: this.#core.region, accountId: cred.principal.accountId };
  }

  #authFailed(e: AuthError): void {
    this.#core.metrics.connectionsTotal.labels("auth_failed").inc();
    this.#core.logger.warn(
      { conn: this.id, remote: this.remoteAddress, accessKeyId: this.#accessKeyId, reason: e.detail },
      "amqp login refused",
    );
    this.#accessKeyId = undefined;
    const text = `ACCESS_REFUSED - Login was refused using authentication mechanism ${this.#mechanism}: ${e.message}`;
    if (this.#caps.authentication_failure_close === true) {
      this.#closeByEdge(ReplyCode.ACCESS_REFUSED, text, 10, 11);
    } else {
      // Without the capability the client expects the socket to close (as RabbitMQ does).
      this.#phase = "closing";
      this.#closeOrigin = "edge";
      this.#endClient();
    }
  }

  #tuneOk(m: DecodedMethod): void {
    const channelMax = (m.args.channelMax as number) || 65535;
    const frameMax = m.args.frameMax as number;
    const heartbeat = m.args.heartbeat as number;
    if (channelMax > this.#core.channelMax) {
      this.#protocolError(
        ReplyCode.NOT_ALLOWED,
        `NOT_ALLOWED - negotiated channel_max = ${channelMax} is higher than the maximum allowed value (${this.#core.channelMax})`,
        10,
        31,
      );
      return;
    }
    if (frameMax === 0 || frameMax > this.#core.frameMax || frameMax < FRAME_MIN_SIZE) {
      this.#protocolError(
        ReplyCode.NOT_ALLOWED,
        `NOT_ALLOWED - frame_max = ${frameMax} is outside ${FRAME_MIN_SIZE}..${this.#core.frameMax}`,
        10,
        31,
      );
      return;
    }
    this.#channelMax = channelMax;
    this.#frameMax = frameMax;
    this.#heartbeat = heartbeat;
    this.#reader.maxFrameSize = frameMax;
    this.#phase = "open";
  }

  #open(m: DecodedMethod): void {
    this.#vhost = m.args.virtualHost as string;
    // Built once per connection; `acs:CurrentTime` reads the clock when a statement asks.
    this.#context = clockContext({
      "amqp:Vhost": this.#vhost,
      "acs:SourceIp": this.remoteAddress,
      "acs:SecureTransport": this.#secure,
    });
    this.#rules = new ConnectionRules(this.#scope, this.#vhost);
    const denial = this.#check(this.#rules.checks({ op: "connection.open" }));
    if (denial) {
      this.#core.metrics.connectionsTotal.labels("vhost_denied").inc();
      this.#closeByEdge(
        ReplyCode.NOT_ALLOWED,
        `NOT_ALLOWED - access to vhost '${this.#vhost}' refused: ${denialText(denial.check.action, denial.check.resource, denial.decision)}`,
        10,
        40,
      );
      return;
    }
    this.#phase = "opening";
    this.#reader.pause();
    this.#connectUpstream();
  }

  // --- upstream handshake

  #connectUpstream(candidates: readonly UpstreamTarget[] = this.#core.upstreamOrder()): void {
    const t = candidates[0]!;
    this.#upTarget = t;
    const up = openUpstream(t, () => {
      connected = true;
      clearTimeout(connectTimer);
      this.#upPhase = "start";
      up.write(PROTOCOL_HEADER);
    });
    this.#up = up;
    this.#upPhase = "connecting";
    up.setNoDelay(true);
    this.#toUp = new Output(up, () => this.#blocked(up, this.#client));
    this.#upReader = new FrameReader(
      {
        frame: (type, ch, buf, start, end) => this.#onUpFrame(type, ch, buf, start, end),
        splitBody: (ch, pieces) => this.#onUpSplitBody(ch, pieces),
        error: (_code, text) => this.#upstreamBroken(`upstream framing error: ${text}`),
      },
      1 << 20,
    );
    // A node that refuses or does not answer the connect (TCP, and TLS for amqps): the next one, if any.
    let connected = false;
    const connectTimer = setTimeout(
      () => up.destroy(new Error(`no connect within ${this.#core.upstreamConnectTimeoutMs} ms`)),
      this.#core.upstreamConnectTimeoutMs,
    );
    up.on("data", (chunk: Buffer) => {
      this.#upRead = true;
      this.#upReader!.push(chunk);
    });
    up.on("error", (err) => {
      // RabbitMQ resets the socket right after its close-ok: expected while closing.
      const level = this.#upPhase === "closing" || this.#upPhase === "closed" ? "debug" : "warn";
      this.#core.logger[level]({ conn: this.id, err: err.message }, "upstream socket error");
    });
    up.on("close", () => {
      clearTimeout(connectTimer);
      if (!connected && candidates.length > 1 && this.#phase === "opening" && !this.#clientEnded) {
        this.#core.logger.warn(
          { conn: this.id, upstream: `${t.host}:${t.port}` },
          "upstream node unreachable: trying the next",
        );
        this.#connectUpstream(candidates.slice(1));
        return;
      }
      this.#onUpClosed();
    });
  }

  #upstreamFailed(why: string): void {
    this.#core.metrics.connectionsTotal.labels("upstream_failed").inc();
    this.#core.logger.error({ conn: this.id, why }, "upstream connection failed");
    this.#up?.destroy();
    this.#closeByEdge(ReplyCode.INTERNAL_ERROR, `INTERNAL_ERROR - upstream broker unavailable: ${why}`);
  }

  #upstreamBroken(why: string): void {
    if (this.#phase === "opening") {
      this.#upstreamFailed(why);
      return;
    }
    this.#core.logger.error({ conn: this.id, why }, "upstream protocol error");
    this.#up?.destroy();
    this.#closeByEdge(ReplyCode.INTERNAL_ERROR, `INTERNAL_ERROR - ${why}`);
  }

  #upHandshakeFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    if (type === FRAME_HEARTBEAT) return;
    if (type !== FRAME_METHOD || ch !== 0) {
      this.#upstreamFailed("unexpected frame during the handshake");
      return;
    }
    let m: DecodedMethod;
    try {
      m = decodeMethod(buf, start + 7, end - 1);
    } catch (e) {
      this.#upstreamFailed(`undecodable method: ${(e as Error).message}`);
      return;
    }
    const toUp = this.#toUp!;
    if (m.key === K.CLOSE) {
      toUp.write(encodeMethodFrame(0, "connection.close-ok"));
      toUp.flush();
      const code = m.args.replyCode as number;
      const text = m.args.replyText as string;
      this.#up?.end();
      this.#core.metrics.connectionsTotal.labels("upstream_failed").inc();
      if (this.#upPhase === "open-ok") {
        // e.g. 530 NOT_ALLOWED - vhost not found: the client learns what RabbitMQ said.
        this.#core.logger.info({ conn: this.id, code, text }, "upstream refused connection.open");
        this.#closeByEdge(code, text, 10, 40);
        return;
      }
      this.#core.logger.error(
        { conn: this.id, code, text },
        "upstream refused the edge's service credentials",
      );
      this.#closeByEdge(
        ReplyCode.INTERNAL_ERROR,
        "INTERNAL_ERROR - the upstream broker refused the edge's service credentials",
      );
      return;
    }
    if (this.#upPhase === "start" && m.key === K.START) {
      const t = this.#upTarget!;
      const caps = { ...this.#caps };
      toUp.write(
        encodeMethodFrame(0, "connection.start-ok", {
          clientProperties: {
            ...this.#clientProperties,
            capabilities: caps,
            connection_name: `portcullis ${this.id} for ${this.#principalKey}${this.#userName ? ` (${this.#userName})` : ""}`,
          },
          mechanism: "PLAIN",
          response: Buffer.from(`\u0000${t.username}\u0000${t.password}`, "utf8"),
          locale: "en_US",
        }),
      );
      this.#upPhase = "tune";
      return;
    }
    if (this.#upPhase === "tune" && m.key === K.TUNE) {
      const upChannelMax = (m.args.channelMax as number) || 65535;
      const upFrameMax = (m.args.frameMax as number) || 0xffffffff;
      if (upChannelMax < this.#channelMax || upFrameMax < this.#frameMax) {
        this.#upstreamFailed(
          `upstream limits (channel_max ${upChannelMax}, frame_max ${upFrameMax}) are below the negotiated ones`,
        );
        return;
      }
      toUp.write(
        encodeMethodFrame(0, "connection.tune-ok", {
          channelMax: this.#channelMax,
          frameMax: this.#frameMax,
          heartbeat: this.#heartbeat,
        }),
      );
      toUp.write(encodeMethodFrame(0, "connection.open", { virtualHost: this.#vhost }));
      this.#upReader!.maxFrameSize = this.#frameMax;
      this.#upPhase = "open-ok";
      return;
    }
    if (this.#upPhase === "open-ok" && m.key === K.OPEN_OK) {
      this.#upPhase = "running";
      this.#phase = "running";
      if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
      this.#toClient.write(encodeMethodFrame(0, "connection.open-ok"));
      this.#core.metrics.connectionsTotal.labels("opened").inc();
      this.#core.logger.info(
        {
          conn: this.id,
          remote: this.remoteAddress,
          principal: this.#principalKey,
          user: this.#userName,
          vhost: this.#vhost,
        },
        "amqp connection open",
      );
      this.#startHeartbeats();
      if (this.#recheckPending) {
        // An event affected this principal while the upstream was being opened.
        this.#recheckPending = false;
        this.recheck();
        if (this.#phase !== "running") return;
      }
      this.#reader.resume();
      return;
    }
    this.#upstreamFailed(`unexpected ${m.spec.name} during the handshake`);
  }

  // --- heartbeats (AMQP 0-9-1 §4.2.7), per hop

  #startHeartbeats(): void {
    if (this.#heartbeat <= 0) return;
    const half = (this.#heartbeat * 1000) / 2;
    this.#heartbeatTimer = setInterval(() => this.#heartbeatTick(), half);
    this.#heartbeatTimer.unref();
  }

  #heartbeatTick(): void {
    if (this.#phase !== "running") return;
    if (!this.#toClient.wrote) this.#toClient.write(HEARTBEAT_FRAME);
    this.#toClient.wrote = false;
    if (this.#toUp && !this.#toUp.wrote) this.#toUp.write(HEARTBEAT_FRAME);
    if (this.#toUp) this.#toUp.wrote = false;
    // Two heartbeat intervals without a single octet: the peer is gone.
    if (this.#clientRead) {
      this.#clientRead = false;
      this.#clientMissed = 0;
    } else if (++this.#clientMissed >= 4) {
      this.#core.logger.info({ conn: this.id }, "missed heartbeats from client");
      this.#destroy();
      return;
    }
    if (this.#upRead) {
      this.#upRead = false;
      this.#upMissed = 0;
    } else if (++this.#upMissed >= 4) {
      this.#core.logger.warn({ conn: this.id }, "missed heartbeats from upstream");
      this.#up?.destroy();
    }
  }

  // ---------------------------------------------------------------------------
  // Authorization

  /** Ask every check; undefined when all allow, else the first denial. */
  #check(checks: Check[]): { check: Check; decision: Decision } | undefined {
    for (const c of checks) {
      const d = this.#decide(c.action, c.resource, c.routingKey);
      if (d.decision !== "Allow") return { check: c, decision: d };
    }
    return undefined;
  }

  /** One decision: counted, logged and recorded when it is a denial. In memory only. */
  #decide(action: string, resource: string, routingKey?: string): Decision {
    const core = this.#core;
    const context: RequestContext =
      routingKey === undefined
        ? this.#context
        : extendContext(this.#context, { "amqp:RoutingKey": routingKey });
    const failClosed = core.failClosed();
    const d = failClosed
      ? failClosedDecision(action, resource, this.#who())
      : core.feed.projection.authorize(this.#principal!, action, resource, context);
    core.metrics.decision(action, d.decision);
    if (d.decision !== "Allow") {
      core.logger.warn(
        {
          conn: this.id,
          remote: this.remoteAddress,
          principal: this.#principalKey,
          user: this.#userName,
          action,
          resource,
          decision: d.decision,
          reason: d.reason,
          statements: d.decidingStatements,
          position: core.feed.position,
        },
        "amqp access denied",
      );
    }
    // A fail-closed refusal is the edge's rule, not a policy decision: the audit
    // could not re-decide it from the log, so it is logged above but not recorded.
    const a = core.logAllows;
    if (core.onDecision && !failClosed && (d.decision !== "Allow" || a === true || (a !== false && a()))) {
      try {
        core.onDecision({
          time: nowIso(),
          edgeId: core.edgeId,
          protocol: "amqp",
          principal: this.#principalKey!,
          action,
          resource,
          context: recordContext(context),
          decision: d.decision,
          decidingStatements: d.decidingStatements,
          position: core.feed.position,
          clientId: this.id,
        });
      } catch {
        // a sink must never break the relay (DecisionSink contract)
      }
    }
    return d;
  }

  /** Refuse a method: channel.close 403 naming the action and the resource. */
  #refuse(
    chan: Channel,
    action: string,
    resource: string,
    d: Decision,
    classId: number,
    methodId: number,
  ): void {
    this.#closeChannelByEdge(
      chan,
      ReplyCode.ACCESS_REFUSED,
      `ACCESS_REFUSED - ${denialText(action, resource, d)}`,
      classId,
      methodId,
    );
  }

  #who(): string {
    return this.#userName !== undefined
      ? `user \`${this.#userName}\``
      : `account \`${this.#principal?.accountId}\``;
  }

  // ---------------------------------------------------------------------------
  // Running: client frames

  #runningFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    if (type === FRAME_HEARTBEAT) {
      if (ch !== 0)
        this.#protocolError(
          ReplyCode.UNEXPECTED_FRAME,
          `UNEXPECTED_FRAME - heartbeat frame on channel ${ch}`,
        );
      return;
    }
    if (ch === 0) {
      if (type !== FRAME_METHOD) {
        this.#protocolError(
          ReplyCode.UNEXPECTED_FRAME,
          `UNEXPECTED_FRAME - content frame (type ${type}) on channel 0`,
        );
        return;
      }
      this.#connectionMethod(buf, start, end);
      return;
    }
    if (ch > this.#channelMax) {
      this.#protocolError(
        ReplyCode.CHANNEL_ERROR,
        `CHANNEL_ERROR - channel ${ch} is above the negotiated channel_max ${this.#channelMax}`,
      );
      return;
    }
    const chan = this.#channels.get(ch);
    if (chan?.held) {
      this.#hold(chan, { type, buf, start, end }, end - start);
      return;
    }
    if (type === FRAME_METHOD) {
      this.#channelMethod(chan, ch, buf, start, end);
      return;
    }
    if (type === FRAME_HEADER) {
      this.#contentHeader(chan, ch, buf, start, end);
      return;
    }
    this.#runningBody(ch, end - start - FRAME_OVERHEAD, { buf, start, end }, undefined);
    return;
  }

  #runningBody(
    ch: number,
    size: number,
    whole: { buf: Buffer; start: number; end: number } | undefined,
    pieces: Buffer[] | undefined,
  ): void {
    const chan = this.#channels.get(ch);
    if (chan?.held) {
      this.#hold(
        chan,
        whole ? { type: FRAME_BODY, ...whole } : { type: FRAME_BODY, pieces: pieces!, size },
        size,
      );
      return;
    }
    if (ch === 0) {
      this.#protocolError(ReplyCode.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content body frame on channel 0");
      return;
    }
    if (!chan) {
      this.#protocolError(
        ReplyCode.CHANNEL_ERROR,
        `CHANNEL_ERROR - content body on channel ${ch}, which is not open`,
      );
      return;
    }
    if (chan.client !== "open") return; // discarded while the channel closes (AMQP 0-9-1 §4.2.? channel.close)
    if (chan.expect < 0) {
      this.#protocolError(
        ReplyCode.UNEXPECTED_FRAME,
        `UNEXPECTED_FRAME - content body frame on channel ${ch}, which expects ${chan.expect === EXPECT_HEADER ? "a content header" : "a method frame"}`,
      );
      return;
    }
    if (size > chan.expect) {
      this.#protocolError(
        ReplyCode.UNEXPECTED_FRAME,
        `UNEXPECTED_FRAME - content body frame of ${size} octets exceeds the ${chan.expect} octets left of the declared body size`,
      );
      return;
    }
    chan.expect -= size;
    if (chan.expect === 0) chan.expect = EXPECT_NONE;
    const toUp = this.#toUp!;
    if (whole) toUp.forward(whole.buf, whole.start, whole.end);
    else for (const p of pieces!) toUp.write(p);
    if (chan.expect === EXPECT_NONE && chan.afterContent !== undefined) {
      for (const f of chan.afterContent) toUp.write(f);
      chan.afterContent = undefined;
    }
  }

  /**
   * Send a frame of the edge's own upstream on a channel (basic.cancel,
   * basic.reject, basic.ack). The client's content frames are forwarded as they
   * arrive, so while a content body is under way on the channel any other frame
   * on it would end that content (RabbitMQ closes the whole connection with 505
   * UNEXPECTED_FRAME): then the frame waits for the body's last frame. (Held
   * frames have not been forwarded, and a hold starts at a method frame, so a
   * channel that holds is at a frame boundary upstream.)
   */
  #upInject(chan: Channel, frame: Buffer): void {
    if (chan.held !== undefined || chan.expect < 0) this.#toUp!.write(frame);
    else if (chan.afterContent === undefined) chan.afterContent = [frame];
    else chan.afterContent.push(frame);
  }

  #contentHeader(chan: Channel | undefined, ch: number, buf: Buffer, start: number, end: number): void {
    if (!chan) {
      this.#protocolError(
        ReplyCode.CHANNEL_ERROR,
        `CHANNEL_ERROR - content header on channel ${ch}, which is not open`,
      );
      return;
    }
    if (chan.client !== "open") return;
    if (chan.expect !== EXPECT_HEADER) {
      this.#protocolError(
        ReplyCode.UNEXPECTED_FRAME,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
      );
      return;
    }
    // AMQP 0-9-1 §4.2.6.1: class-id (2), weight (2), body size (8), property flags (2), properties.
    if (end - start - FRAME_OVERHEAD < 14) {
      this.#protocolError(ReplyCode.FRAME_ERROR, "FRAME_ERROR - content header shorter than 14 octets");
      return;
    }
    const classId = buf.readUInt16BE(start + 7);
    if (classId !== 60) {
      this.#protocolError(
        ReplyCode.UNEXPECTED_FRAME,
        `UNEXPECTED_FRAME - expected content header for class 60, got one for class ${classId} instead`,
      );
      return;
    }
    const bodySize = buf.readUInt32BE(start + 11) * 4294967296 + buf.readUInt32BE(start + 15);
    const pub = chan.pendingPublish;
    chan.pendingPublish = undefined;
    if (pub) {
      // Sender-selected distribution: RabbitMQ also routes by the CC and BCC headers' keys.
      let keys: string[];
      try {
        keys = senderSelectedKeys(contentHeaders(buf, start, end));
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        this.#protocolError(e.code, `${replyCodeName(e.code)} - content header: ${e.message}`, 60, 40);
        return;
      }
      for (const rk of keys) {
        const resource = this.#rules.exchangeMessages(pub.exchange, rk);
        const d = this.#decide("amqp:BasicPublish", resource, rk);
        if (d.decision !== "Allow") {
          this.#refuse(chan, "amqp:BasicPublish", resource, d, 60, 40);
          return;
        }
      }
      this.#toUp!.forward(pub.buf, pub.start, pub.end);
    }
    chan.expect = bodySize === 0 ? EXPECT_NONE : bodySize;
    this.#toUp!.forward(buf, start, end);
  }

  #hold(chan: Channel, f: HeldFrame, size: number): void {
    chan.held!.push(f);
    chan.heldBytes += size;
    if (chan.heldBytes > HELD_PAUSE_BYTES && !this.#client.isPaused()) {
      this.#heldPaused++;
      this.#client.pause();
    }
  }

  /** Start holding the channel's client frames (the current one first). */
  #startHold(chan: Channel, buf: Buffer, start: number, end: number): void {
    chan.held = [{ type: FRAME_METHOD, buf, start, end }];
    chan.heldBytes = end - start;
  }

  /** Replay held frames through the normal path (a frame may start a new hold: the rest follows it). */
  #release(chan: Channel): void {
    const held = chan.held;
    if (!held) return;
    chan.held = undefined;
    chan.heldBytes = 0;
    for (const f of held) {
      if (this.#phase !== "running") return;
      if ("pieces" in f) this.#onClientSplitBody(chan.id, f.pieces, f.size);
      else this.#runningFrame(f.type, chan.id, f.buf, f.start, f.end);
    }
    if (this.#heldPaused > 0 && ![...this.#channels.values()].some((c) => c.held)) {
      this.#heldPaused = 0;
      this.#client.resume();
    }
  }

  #connectionMethod(buf: Buffer, start: number, end: number): void {
    const m = this.#decode(buf, start, end);
    if (!m) return;
    if (m.key === K.CLOSE) {
      this.#phase = "closing";
      this.#closeOrigin = "client";
      this.#toUp!.forward(buf, start, end);
      this.#upPhase = "closing";
      this.#timer(this.#core.closeTimeoutMs, () => {
        this.#toClient.write(encodeMethodFrame(0, "connection.close-ok"));
        this.#endClient();
        this.#up?.destroy();
      });
      return;
    }
    if (m.key === K.UPDATE_SECRET) {
      this.#updateSecret(m);
      return;
    }
    this.#protocolError(
      ReplyCode.CHANNEL_ERROR,
      `CHANNEL_ERROR - unexpected method ${m.spec.name} in connection state running`,
      m.spec.classId,
      m.spec.methodId,
    );
  }

  /** connection.update-secret (RabbitMQ extension): a fresh password for the same AccessKey. */
  #updateSecret(m: DecodedMethod): void {
    const password = (m.args.newSecret as Buffer).toString("utf8");
    const cred = this.#core.credentials.resolve(this.#accessKeyId!);
    try {
      if (!cred?.usable) throw new AuthError("the AccessKey is no longer usable");
      verifyPassword(cred.secret, password, Date.now(), this.#core.maxClockSkewMs);
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      this.#core.logger.warn({ conn: this.id, reason: e.detail }, "amqp update-secret refused");
      this.#closeByEdge(
        ReplyCode.NOT_ALLOWED,
        `NOT_ALLOWED - Secret update was refused: ${e.message}`,
        m.spec.classId,
        m.spec.methodId,
      );
      return;
    }
    this.#toClient.write(encodeMethodFrame(0, "connection.update-secret-ok"));
  }

  #channelMethod(chan: Channel | undefined, ch: number, buf: Buffer, start: number, end: number): void {
    // The per-message methods are decoded in place; anything irregular takes the general path.
    if (chan !== undefined && chan.client === "open" && chan.expect === EXPECT_NONE && end - start >= 13) {
      const key = buf.readUInt32BE(start + 7);
      if (key === K.B_PUBLISH && this.#fastPublish(chan, buf, start, end)) return;
      if (key === K.B_ACK && this.#fastAck(chan, buf, start, end)) return;
    }
    const m = this.#decode(buf, start, end);
    if (!m) return;
    const cls = m.spec.classId;
    const mid = m.spec.methodId;
    if (!chan) {
      if (m.key === K.CH_OPEN) {
        this.#channels.set(ch, newChannel(ch));
        this.#toUp!.forward(buf, start, end);
        return;
      }
      if (m.key === K.CH_CLOSE_OK) return; // a late close-ok for a channel already gone: ignored
      this.#protocolError(ReplyCode.CHANNEL_ERROR, "CHANNEL_ERROR - expected 'channel.open'", cls, mid);
      return;
    }
    switch (chan.client) {
      case "open":
        break;
      case "closing-edge":
        // AMQP 0-9-1 §2.2.? (channel.close): after sending close, discard all but close and close-ok.
        if (m.key === K.CH_CLOSE_OK) {
          chan.client = "closed";
          this.#maybeFreeChannel(chan);
        } else if (m.key === K.CH_CLOSE) {
          this.#toClient.write(encodeMethodFrame(ch, "channel.close-ok"));
        }
        return;
      case "closing-up":
        if (m.key === K.CH_CLOSE_OK) {
          this.#toUp!.forward(buf, start, end);
          this.#channels.delete(ch);
        } else if (m.key === K.CH_CLOSE) {
          this.#toUp!.forward(buf, start, end);
        }
        return;
      case "closing-client":
        if (m.key === K.CH_CLOSE_OK) this.#toUp!.forward(buf, start, end);
        return;
      case "closed":
        return;
    }
    if (chan.expect !== EXPECT_NONE) {
      this.#protocolError(
        ReplyCode.UNEXPECTED_FRAME,
        `UNEXPECTED_FRAME - expected content ${chan.expect === EXPECT_HEADER ? "header" : "body"} for class 60, got non content frame instead`,
        60,
        40,
      );
      return;
    }
    if (m.spec.sender === "s") {
      this.#protocolError(
        ReplyCode.COMMAND_INVALID,
        `COMMAND_INVALID - ${m.spec.name} is sent by servers, not clients`,
        cls,
        mid,
      );
      return;
    }
    this.#method(chan, m, buf, start, end);
  }

  /** basic.publish: BasicPublish on the exchange's messages with the routing key. */
  #publish(
    chan: Channel,
    exchange: string,
    routingKey: string,
    buf: Buffer,
    start: number,
    end: number,
  ): void {
    const resource = this.#rules.exchangeMessages(exchange, routingKey);
    const d = this.#decide("amqp:BasicPublish", resource, routingKey);
    if (d.decision !== "Allow") {
      this.#refuse(chan, "amqp:BasicPublish", resource, d, 60, 40);
      return;
    }
    // Forwarded with its content header, once the header's CC/BCC keys are checked too.
    chan.expect = EXPECT_HEADER;
    chan.pendingPublish = { buf, start, end, exchange };
  }

  /**
   * basic.publish decoded in place: reserved-1 (short), exchange and routing key
   * (shortstr), one octet of bits, nothing after. False: not that shape, take the general path.
   */
  #fastPublish(chan: Channel, buf: Buffer, start: number, end: number): boolean {
    const last = end - 1;
    let o = start + 7 + 6;
    if (o >= last) return false;
    const exStart = o + 1;
    o = exStart + buf[o]!;
    if (o >= last) return false;
    const rkStart = o + 1;
    o = rkStart + buf[o]!;
    if (o + 1 !== last) return false;
    const exchange = rkStart - 1 === exStart ? "" : buf.toString("utf8", exStart, rkStart - 1);
    const routingKey = o === rkStart ? "" : buf.toString("utf8", rkStart, o);
    this.#publish(chan, exchange, routingKey, buf, start, end);
    return true;
  }

  /** basic.ack decoded in place: delivery tag (longlong) and one octet of bits. */
  #fastAck(chan: Channel, buf: Buffer, start: number, end: number): boolean {
    const p = start + 7;
    if (end - 1 !== p + 13) return false;
    const tag = buf.readUInt32BE(p + 4) * 4294967296 + buf.readUInt32BE(p + 8);
    this.#settle(chan, "basic.ack", tag, (buf[p + 12]! & 1) !== 0, buf, start, end);
    return true;
  }

  /** Check an operation; on a denial the channel is closed with 403 and false returned. */
  #allowed(chan: Channel, cls: number, mid: number, op: AmqpOp): boolean {
    const denial = this.#check(this.#rules.checks(op));
    if (!denial) return true;
    this.#refuse(chan, denial.check.action, denial.check.resource, denial.decision, cls, mid);
    return false;
  }

  /**
   * The queue an empty name stands for (the channel's last declared queue, as
   * RabbitMQ resolves it); undefined when the frame was held (name not known yet)
   * or refused (no queue declared: 404, as RabbitMQ).
   */
  #queueName(
    chan: Channel,
    name: string,
    buf: Buffer,
    start: number,
    end: number,
    cls: number,
    mid: number,
  ): string | undefined {
    if (name !== "") return name;
    if (chan.lastQueuePending) {
      this.#startHold(chan, buf, start, end);
      return undefined;
    }
    if (chan.lastQueue === undefined) {
      this.#closeChannelByEdge(
        chan,
        ReplyCode.NOT_FOUND,
        "NOT_FOUND - no previously declared queue",
        cls,
        mid,
      );
      return undefined;
    }
    return chan.lastQueue;
  }

  /** Every other channel method, decoded. */
  #method(chan: Channel, m: DecodedMethod, buf: Buffer, start: number, end: number): void {
    const a = m.args;
    const cls = m.spec.classId;
    const mid = m.spec.methodId;
    switch (m.key) {
      case K.B_PUBLISH:
        this.#publish(chan, a.exchange as string, a.routingKey as string, buf, start, end);
        return;
      case K.B_ACK:
      case K.B_NACK:
      case K.B_REJECT: {
        const op = m.key === K.B_ACK ? "basic.ack" : m.key === K.B_NACK ? "basic.nack" : "basic.reject";
        const multiple = m.key !== K.B_REJECT && (a.multiple as boolean);
        this.#settle(chan, op, a.deliveryTag as number, multiple, buf, start, end);
        return;
      }
      case K.CH_OPEN: {
        this.#protocolError(ReplyCode.CHANNEL_ERROR, "CHANNEL_ERROR - second 'channel.open' seen", cls, mid);
        return;
      }
      case K.CH_CLOSE:
        chan.client = "closing-client";
        this.#toUp!.forward(buf, start, end);
        return;
      case K.EX_DECLARE: {
        const passive = a.passive as boolean;
        const ae = passive ? undefined : stringArgument(a.arguments as FieldTable, "alternate-exchange");
        const op: AmqpOp = {
          op: "exchange.declare",
          exchange: a.exchange as string,
          passive,
          ...(ae !== undefined ? { alternateExchange: ae } : {}),
        };
        if (!this.#allowed(chan, cls, mid, op)) return;
        this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.EX_DELETE:
        if (!this.#allowed(chan, cls, mid, { op: "exchange.delete", exchange: a.exchange as string })) return;
        this.#toUp!.forward(buf, start, end);
        return;
      case K.EX_BIND:
      case K.EX_UNBIND: {
        const op = m.key === K.EX_BIND ? "exchange.bind" : "exchange.unbind";
        const o = { op, source: a.source, destination: a.destination, routingKey: a.routingKey } as AmqpOp;
        if (!this.#allowed(chan, cls, mid, o)) return;
        this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.Q_DECLARE: {
        const passive = a.passive as boolean;
        let name = a.queue as string;
        if (passive) {
          const q = this.#queueName(chan, name, buf, start, end, cls, mid);
          if (q === undefined) return;
          name = q;
        }
        const dlx = passive ? undefined : deadLetterExchange(a.arguments as FieldTable);
        if (
          !this.#allowed(chan, cls, mid, {
            op: "queue.declare",
            queue: name,
            passive,
            ...(dlx !== undefined ? { deadLetterExchange: dlx } : {}),
          })
        ) {
          return;
        }
        chan.declareSeq++;
        if (name !== "") {
          chan.lastQueue = name;
          chan.lastQueuePending = false;
        } else {
          chan.lastQueue = undefined;
          chan.lastQueuePending = !(a.noWait as boolean);
        }
        if (!(a.noWait as boolean)) chan.declareOks.push(chan.declareSeq);
        this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.Q_BIND:
      case K.Q_UNBIND: {
        const q = this.#queueName(chan, a.queue as string, buf, start, end, cls, mid);
        if (q === undefined) return;
        const op = m.key === K.Q_BIND ? "queue.bind" : "queue.unbind";
        if (
          !this.#allowed(chan, cls, mid, {
            op,
            queue: q,
            exchange: a.exchange as string,
            routingKey: a.routingKey as string,
          })
        )
          return;
        this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.Q_PURGE:
      case K.Q_DELETE: {
        const q = this.#queueName(chan, a.queue as string, buf, start, end, cls, mid);
        if (q === undefined) return;
        if (
          !this.#allowed(chan, cls, mid, {
            op: m.key === K.Q_PURGE ? "queue.purge" : "queue.delete",
            queue: q,
          })
        )
          return;
        this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.B_CONSUME: {
        const q = this.#queueName(chan, a.queue as string, buf, start, end, cls, mid);
        if (q === undefined) return;
        if (!this.#allowed(chan, cls, mid, { op: "basic.consume", queue: q })) return;
        // A no-ack consumer is consumed upstream with acks, which the edge sends itself as it
        // forwards each delivery: a delivery that reaches the edge after a revocation then goes
        // back to its queue (basic.reject requeue) instead of being lost with no-ack. The client
        // sees no-ack semantics (acking such a delivery is 406, as with RabbitMQ), except that
        // the channel's basic.qos prefetch now applies to this consumer too. Not on a
        // transactional channel, where acks would wait for tx.commit; there a revoked no-ack
        // consumer's late deliveries are dropped (and counted), as RabbitMQ's own no-ack does.
        const noAck = a.noAck as boolean;
        const edgeAcks = noAck && !chan.tx;
        const p: PendingConsume = { queue: q, noAck, edgeAcks, epoch: this.#epoch };
        const tag = a.consumerTag as string;
        if (!(a.noWait as boolean)) chan.pendingConsumes.push(p);
        else if (tag !== "") chan.consumers.set(tag, consumerOf(tag, p));
        else chan.anonymousConsumes.push(p);
        if (edgeAcks) this.#toUp!.write(encodeMethodFrame(chan.id, "basic.consume", { ...a, noAck: false }));
        else this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.B_CANCEL: {
        const c = chan.consumers.get(a.consumerTag as string);
        if (c && !this.#allowed(chan, cls, mid, { op: "basic.cancel", queue: c.queue })) return;
        if (!(a.noWait as boolean)) chan.pendingCancels.push("client");
        else if (c) chan.consumers.delete(c.tag);
        this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.B_GET: {
        const q = this.#queueName(chan, a.queue as string, buf, start, end, cls, mid);
        if (q === undefined) return;
        if (!this.#allowed(chan, cls, mid, { op: "basic.get", queue: q })) return;
        chan.pendingGets.push({ queue: q, noAck: a.noAck as boolean });
        this.#toUp!.forward(buf, start, end);
        return;
      }
      case K.B_RECOVER:
      case K.B_RECOVER_ASYNC:
        if (!this.#allowed(chan, cls, mid, { op: "basic.recover" })) return;
        // Every unacked delivery is redelivered with a new tag: the old tags are void.
        chan.deliveries.clear();
        chan.txSettled = [];
        this.#toUp!.forward(buf, start, end);
        return;
      case K.TX_SELECT:
        chan.tx = true;
        this.#toUp!.forward(buf, start, end);
        return;
      case K.TX_COMMIT:
        chan.txSettled = [];
        this.#toUp!.forward(buf, start, end);
        return;
      case K.TX_ROLLBACK:
        if (chan.txSettled.length > 0) {
          const all = [...chan.deliveries, ...chan.txSettled].sort((x, y) => x[0] - y[0]);
          chan.deliveries = new Map(all);
          chan.txSettled = [];
        }
        this.#toUp!.forward(buf, start, end);
        return;
      default: {
        // channel.flow/flow-ok, basic.qos, confirm.select, access.request: no resource, nothing to check.
        this.#toUp!.forward(buf, start, end);
        return;
      }
    }
  }

  /** basic.ack / nack / reject: check each queue the settled deliveries came from, then forward. */
  #settle(
    chan: Channel,
    op: "basic.ack" | "basic.nack" | "basic.reject",
    tag: number,
    multiple: boolean,
    buf: Buffer,
    start: number,
    end: number,
  ): void {
    const action = settleAction(op);
    const mid = op === "basic.ack" ? 80 : op === "basic.nack" ? 120 : 90;
    if (!multiple) {
      const q = chan.deliveries.get(tag);
      if (q !== undefined) {
        const resource = this.#rules.queueMessages(q);
        const d = this.#decide(action, resource);
        if (d.decision !== "Allow") {
          this.#refuse(chan, action, resource, d, 60, mid);
          return;
        }
        chan.deliveries.delete(tag);
        if (chan.tx) chan.txSettled.push([tag, q]);
      }
    } else {
      const settled: [number, string][] = [];
      const queues = new Set<string>();
      for (const e of chan.deliveries) {
        if (tag !== 0 && e[0] > tag) break;
        settled.push(e);
        queues.add(e[1]);
      }
      for (const q of queues) {
        const resource = this.#rules.queueMessages(q);
        const d = this.#decide(action, resource);
        if (d.decision !== "Allow") {
          this.#refuse(chan, action, resource, d, 60, mid);
          return;
        }
      }
      for (const e of settled) chan.deliveries.delete(e[0]);
      if (chan.tx) chan.txSettled.push(...settled);
    }
    // An unknown tag is unknown upstream too (every ack-required delivery passes here): the
    // upstream answers it with 406 PRECONDITION_FAILED, as RabbitMQ itself would.
    this.#toUp!.forward(buf, start, end);
  }

  /** The edge closes one channel: channel.close to the client and to the upstream. */
  #closeChannelByEdge(chan: Channel, code: number, text: string, classId: number, methodId: number): void {
    if (chan.client !== "open") return;
    this.#toClient.write(
      encodeMethodFrame(chan.id, "channel.close", {
        replyCode: code,
        replyText: truncateShortstr(text),
        classId,
        methodId,
      }),
    );
    chan.client = "closing-edge";
    chan.expect = EXPECT_NONE;
    chan.pendingPublish = undefined;
    // The channel goes: RabbitMQ requeues its unacked deliveries itself.
    chan.afterContent = undefined;
    if (!chan.upClosing) {
      chan.upClosing = true;
      this.#toUp!.write(
        encodeMethodFrame(chan.id, "channel.close", {
          replyCode: 200,
          replyText: truncateShortstr(`closed by the portcullis edge: ${text}`),
        }),
      );
    }
    // Frames held for this channel belong to the closed incarnation: the client discards them too.
    if (chan.held) {
      chan.held = undefined;
      chan.heldBytes = 0;
    }
  }

  /** After the client's side closed: free the channel, or hold new frames until the upstream side has. */
  #maybeFreeChannel(chan: Channel): void {
    if (chan.client !== "closed") return;
    if (!chan.upClosing) {
      this.#channels.delete(chan.id);
      this.#release(chan);
    } else if (!chan.held) {
      chan.held = [];
      chan.heldBytes = 0;
    }
  }

  // ---------------------------------------------------------------------------
  // Closing phase

  #closingClientFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    if (type !== FRAME_METHOD || ch !== 0) return;
    let m: DecodedMethod;
    try {
      m = decodeMethod(buf, start + 7, end - 1);
    } catch {
      return;
    }
    if (this.#closeOrigin === "edge") {
      if (m.key === K.CLOSE) this.#toClient.write(encodeMethodFrame(0, "connection.close-ok"));
      if (m.key === K.CLOSE || m.key === K.CLOSE_OK) this.#endClient();
    } else if (this.#closeOrigin === "upstream") {
      if (m.key === K.CLOSE_OK) {
        this.#toUp?.forward(buf, start, end);
        this.#endUp();
        this.#endClient();
      } else if (m.key === K.CLOSE) {
        this.#toClient.write(encodeMethodFrame(0, "connection.close-ok"));
      }
    }
  }

  // ---------------------------------------------------------------------------
  // Upstream → client

  #onUpFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    if (this.#upPhase === "running") {
      this.#upRunningFrame(type, ch, buf, start, end);
      return;
    }
    if (this.#upPhase === "closing") {
      this.#upClosingFrame(type, ch, buf, start, end);
      return;
    }
    if (this.#upPhase === "start" || this.#upPhase === "tune" || this.#upPhase === "open-ok") {
      this.#upHandshakeFrame(type, ch, buf, start, end);
      return;
    }
  }

  #onUpSplitBody(ch: number, pieces: Buffer[]): void {
    if (this.#upPhase !== "running") return;
    const chan = this.#channels.get(ch);
    if (!chan || chan.upClosing || !chan.upForward) return;
    for (const p of pieces) this.#toClient.write(p);
  }

  #upClosingFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    if (type !== FRAME_METHOD || ch !== 0) return;
    let m: DecodedMethod;
    try {
      m = decodeMethod(buf, start + 7, end - 1);
    } catch {
      return;
    }
    if (m.key === K.CLOSE_OK) {
      if (this.#closeOrigin === "client") {
        this.#toClient.forward(buf, start, end);
        this.#endClient();
      }
      this.#endUp();
    } else if (m.key === K.CLOSE) {
      this.#toUp?.write(encodeMethodFrame(0, "connection.close-ok"));
      if (this.#closeOrigin === "client") {
        this.#toClient.write(encodeMethodFrame(0, "connection.close-ok"));
        this.#endClient();
      }
      this.#endUp();
    }
  }

  #upRunningFrame(type: number, ch: number, buf: Buffer, start: number, end: number): void {
    if (type === FRAME_HEARTBEAT) return;
    if (ch === 0) {
      if (type !== FRAME_METHOD) {
        this.#upstreamBroken("content frame on channel 0");
        return;
      }
      this.#upConnectionMethod(buf, start, end);
      return;
    }
    const chan = this.#channels.get(ch);
    if (!chan) return; // nothing of a channel the edge no longer knows reaches the client
    if (type !== FRAME_METHOD) {
      if (!chan.upClosing && chan.upForward) this.#toClient.forward(buf, start, end);
      return;
    }
    const key = end - start >= 12 ? buf.readUInt32BE(start + 7) : 0;
    if (key === K.B_ACK && !chan.upClosing) {
      // a publisher confirm: nothing to track
      this.#toClient.forward(buf, start, end);
      return;
    }
    if (key === K.B_DELIVER && !chan.upClosing && end - start >= 21) {
      // basic.deliver decoded in place: consumer tag (shortstr), then the delivery tag (longlong).
      const tagEnd = start + 12 + buf[start + 11]!;
      if (tagEnd + 8 < end) {
        const deliveryTag = buf.readUInt32BE(tagEnd) * 4294967296 + buf.readUInt32BE(tagEnd + 4);
        this.#deliver(chan, buf.toString("utf8", start + 12, tagEnd), deliveryTag, buf, start, end);
        return;
      }
    }
    let m: DecodedMethod;
    try {
      m = decodeMethod(buf, start + 7, end - 1);
    } catch (e) {
      this.#upstreamBroken(`undecodable method from upstream: ${(e as Error).message}`);
      return;
    }
    if (chan.upClosing) {
      // The edge closed this channel upstream: only the close handshake matters (requeueing is the
      // upstream's job once the channel is closed).
      if (m.key === K.CH_CLOSE_OK) {
        chan.upClosing = false;
        if (chan.client === "closed") this.#maybeFreeChannel(chan);
      } else if (m.key === K.CH_CLOSE) {
        this.#toUp!.write(encodeMethodFrame(ch, "channel.close-ok"));
      }
      chan.upForward = false;
      return;
    }
    const a = m.args;
    switch (m.key) {
      case K.B_DELIVER:
        this.#deliver(chan, a.consumerTag as string, a.deliveryTag as number, buf, start, end);
        return;
      case K.B_GET_OK: {
        const g = chan.pendingGets.shift();
        if (g && !g.noAck) chan.deliveries.set(a.deliveryTag as number, g.queue);
        chan.upForward = true;
        this.#toClient.forward(buf, start, end);
        return;
      }
      case K.B_GET_EMPTY:
        chan.pendingGets.shift();
        this.#toClient.forward(buf, start, end);
        return;
      case K.B_RETURN:
        chan.upForward = true;
        this.#toClient.forward(buf, start, end);
        return;
      case K.B_CONSUME_OK: {
        const p = chan.pendingConsumes.shift();
        const tag = a.consumerTag as string;
        this.#toClient.forward(buf, start, end);
        if (p) {
          const c = consumerOf(tag, p);
          chan.consumers.set(tag, c);
          // Checked before a revocation that came while the consume was in flight: check again.
          if (p.epoch !== this.#epoch) this.#recheckConsumer(chan, c);
        }
        return;
      }
      case K.B_CANCEL_OK: {
        const origin = chan.pendingCancels.shift();
        chan.consumers.delete(a.consumerTag as string);
        if (origin === "edge") return; // the edge's own cancel of a revoked consumer
        this.#toClient.forward(buf, start, end);
        return;
      }
      case K.B_CANCEL: {
        // Server-initiated cancel (queue deleted…): the client already heard of a revoked one.
        const c = chan.consumers.get(a.consumerTag as string);
        if (c?.revoked) return;
        chan.consumers.delete(a.consumerTag as string);
        this.#toClient.forward(buf, start, end);
        return;
      }
      case K.Q_DECLARE_OK: {
        const seq = chan.declareOks.shift();
        if (seq === chan.declareSeq && chan.lastQueuePending) {
          chan.lastQueue = a.queue as string;
          chan.lastQueuePending = false;
          this.#toClient.forward(buf, start, end);
          this.#release(chan);
          return;
        }
        this.#toClient.forward(buf, start, end);
        return;
      }
      case K.CH_CLOSE: {
        if (chan.client === "open") {
          chan.client = "closing-up";
          this.#toClient.forward(buf, start, end);
          // Held frames were sent on a channel that is now closing: the client discards them too.
          chan.held = undefined;
          chan.heldBytes = 0;
          return;
        }
        this.#toClient.forward(buf, start, end);
        return;
      }
      case K.CH_CLOSE_OK:
        if (chan.client === "closing-client") this.#channels.delete(ch);
        this.#toClient.forward(buf, start, end);
        return;
      default: {
        this.#toClient.forward(buf, start, end);
        return;
      }
    }
  }

  /** A delivery from upstream: forwarded (and its tag tracked), or — for a revoked consumer — requeued. */
  #deliver(chan: Channel, tag: string, deliveryTag: number, buf: Buffer, start: number, end: number): void {
    let c = chan.consumers.get(tag);
    if (!c && chan.anonymousConsumes.length > 0) {
      const p = chan.anonymousConsumes.shift()!;
      c = consumerOf(tag, p);
      chan.consumers.set(tag, c);
      if (p.epoch !== this.#epoch) this.#recheckConsumer(chan, c);
    }
    if (!c || c.revoked) {
      chan.upForward = false;
      if (c?.noAck && !c.edgeAcks) {
        this.#core.metrics.droppedNoAck.inc();
      } else if (chan.client === "open") {
        // Revoked consumer: the message goes back to its queue, never lost.
        this.#upInject(chan, encodeMethodFrame(chan.id, "basic.reject", { deliveryTag, requeue: true }));
        this.#core.metrics.requeued.inc();
      }
      // Otherwise the channel is closing: RabbitMQ requeues its unacked deliveries itself, and
      // a frame on a channel it has closed would cost the whole connection (504).
      return;
    }
    if (c.edgeAcks)
      this.#upInject(chan, encodeMethodFrame(chan.id, "basic.ack", { deliveryTag, multiple: false }));
    else if (!c.noAck) chan.deliveries.set(deliveryTag, c.queue);
    chan.upForward = true;
    this.#toClient.forward(buf, start, end);
  }

  #upConnectionMethod(buf: Buffer, start: number, end: number): void {
    let m: DecodedMethod;
    try {
      m = decodeMethod(buf, start + 7, end - 1);
    } catch (e) {
      this.#upstreamBroken(`undecodable method from upstream: ${(e as Error).message}`);
      return;
    }
    if (m.key === K.CLOSE) {
      this.#phase = "closing";
      this.#closeOrigin = "upstream";
      this.#toClient.forward(buf, start, end);
      this.#timer(this.#core.closeTimeoutMs, () => this.#destroy());
      return;
    }
    if (m.key === K.BLOCKED || m.key === K.UNBLOCKED) {
      this.#toClient.forward(buf, start, end);
      return;
    }
    if (m.key === K.UPDATE_SECRET_OK) return;
    this.#core.logger.warn(
      { conn: this.id, method: m.spec.name },
      "unexpected connection method from upstream",
    );
  }

  // ---------------------------------------------------------------------------
  // Revocation (SPEC §7)

  /**
   * Re-check this connection after an event affected its principal or key:
   * credentials or vhost access gone → 320; consumers that lost
   * amqp:BasicConsume are cancelled (basic.cancel to the client, cancel
   * upstream, later deliveries requeued).
   */
  recheck(): void {
    this.#epoch++;
    if (this.#phase === "tune-ok" || this.#phase === "open") {
      this.#recheckCredentials(); // connection.open checks the vhost itself
      return;
    }
    if (this.#phase === "opening") {
      this.#recheckPending = true; // after the upstream's open-ok
      return;
    }
    if (this.#phase !== "running") return;
    if (!this.#recheckCredentials()) return;
    const denial = this.#check(this.#rules.checks({ op: "connection.open" }));
    if (denial) {
      this.#core.metrics.revocations.labels("connection_close").inc();
      const why = denialText(denial.check.action, denial.check.resource, denial.decision);
      this.forceClose(`access to vhost '${this.#vhost}' was revoked: ${why}`);
      return;
    }
    for (const chan of this.#channels.values()) {
      if (chan.client !== "open" || chan.upClosing) continue;
      for (const c of chan.consumers.values()) {
        if (!c.revoked) this.#recheckConsumer(chan, c);
        if (chan.client !== "open") break;
      }
    }
  }

  #recheckCredentials(): boolean {
    const cred = this.#core.credentials.resolve(this.#accessKeyId!);
    const ok =
      cred?.usable === true &&
      principalKey(cred.principal) === this.#principalKey &&
      this.#core.feed.projection.isActive(cred.principal);
    if (!ok) {
      this.#core.metrics.revocations.labels("connection_close").inc();
      this.#core.logger.warn(
        { conn: this.id, principal: this.#principalKey, accessKeyId: this.#accessKeyId },
        "amqp credentials revoked: closing the connection",
      );
      this.forceClose(`the credentials of this connection were revoked (AccessKey \`${this.#accessKeyId}\`)`);
    }
    return ok;
  }

  #recheckConsumer(chan: Channel, c: Consumer): void {
    if (chan.client !== "open" || chan.upClosing) return; // closing: its consumers go with it
    const denial = this.#check(this.#rules.checks({ op: "basic.consume", queue: c.queue }));
    if (!denial) return;
    if (this.#caps.consumer_cancel_notify === true) {
      c.revoked = true;
      this.#core.metrics.revocations.labels("consumer_cancel").inc();
      this.#toClient.write(encodeMethodFrame(chan.id, "basic.cancel", { consumerTag: c.tag, noWait: true }));
      this.#upInject(chan, encodeMethodFrame(chan.id, "basic.cancel", { consumerTag: c.tag, noWait: false }));
      chan.pendingCancels.push("edge");
      this.#core.logger.info(
        { conn: this.id, channel: chan.id, consumerTag: c.tag, queue: c.queue },
        "consumer cancelled after a revocation",
      );
    } else {
      // The client cannot be told of a cancel: close the channel (the upstream requeues its unacked messages).
      this.#core.metrics.revocations.labels("channel_close").inc();
      this.#closeChannelByEdge(
        chan,
        ReplyCode.ACCESS_REFUSED,
        `ACCESS_REFUSED - ${denialText(denial.check.action, denial.check.resource, denial.decision)}`,
        60,
        20,
      );
    }
  }
}

/** The reply text of a denial: RabbitMQ's shape, naming action and resource. */
function denialText(action: string, resource: string, d: Decision): string {
  return d.message ?? `\`${action}\` on \`${resource}\` was refused (${d.decision})`;
}

/** The denial given for everything while the feed is fail-closed (SPEC §6). */
function failClosedDecision(action: string, resource: string, who: string): Decision {
  return Object.freeze({
    decision: "ImplicitDeny" as const,
    action,
    resource,
    reason: "no-match" as const,
    decidingStatements: [],
    missingContextKeys: [],
    message: `${who} is not allowed to perform \`${action}\` on \`${resource}\`: the authorization feed is unavailable (fail-closed)`,
  });
}
