/**
 * The network listeners of the edge: MQTT over TCP, over TLS, and over
 * WebSocket (RFC 6455 with the `mqtt` sub-protocol, MQTT 3.1.1 §6). Each
 * accepted connection is tagged with what the authorizer needs to know about
 * it (source address, transport, whether it is encrypted) before aedes sees it.
 */
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer } from "node:tls";
import { createWebSocketStream, WebSocketServer } from "ws";

/** How a client reached the edge. */
export type Transport = "tcp" | "tls" | "ws" | "wss";

/** What the authorizer knows about a connection. */
export interface ConnectionInfo {
  transport: Transport;
  /** Remote address, IPv4-mapped IPv6 addresses unwrapped (`::ffff:1.2.3.4` → `1.2.3.4`). */
  sourceIp: string;
  /** TLS below MQTT (`acs:SecureTransport`). */
  secure: boolean;
}

/** Property under which a connection carries its {@link ConnectionInfo}. */
export const CONN_INFO: unique symbol = Symbol("portcullis.mqtt.connInfo");

/** A stream tagged with its connection info. */
export type TaggedConnection = Duplex & { [CONN_INFO]?: ConnectionInfo };

/** Unwrap IPv4-mapped IPv6 addresses; `unknown` when the address is not known. */
export function normalizeIp(address: string | undefined): string {
  if (!address) return "unknown";
  if (address.startsWith("::ffff:") && address.includes(".")) return address.slice(7);
  return address;
}

/** Hands an accepted, tagged connection to the broker. */
export type ConnectionHandler = (conn: TaggedConnection, req?: IncomingMessage) => void;

/** A running listener. */
export interface Listener {
  transport: Transport;
  host: string;
  port: number;
  close(): Promise<void>;
}

const listen = (server: Server | HttpServer, port: number, host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });

const closeServer = (server: Server | HttpServer, sockets: Set<Socket>): Promise<void> =>
  new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });

function track(server: Server | HttpServer): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  return sockets;
}

/** Listen for MQTT over plain TCP. */
export async function listenTcp(
  host: string,
  port: number,
  handle: ConnectionHandler,
  noDelay = true,
): Promise<Listener> {
  const server = createNetServer((socket) => {
    // Deliveries are small writes: without TCP_NODELAY, Nagle's algorithm meets the client's
    // delayed ACK and can hold a message back ~40 ms.
    socket.setNoDelay(noDelay);
    const conn = socket as TaggedConnection;
    conn[CONN_INFO] = { transport: "tcp", sourceIp: normalizeIp(socket.remoteAddress), secure: false };
    handle(conn);
  });
  const sockets = track(server);
  const bound = await listen(server, port, host);
  return { transport: "tcp", host, port: bound, close: () => closeServer(server, sockets) };
}

/** Listen for MQTT over TLS (certificate and key in PEM). */
export async function listenTls(
  host: string,
  port: number,
  tls: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer },
  handle: ConnectionHandler,
  noDelay = true,
): Promise<Listener> {
  const server = createTlsServer(
    { key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca } : {}) },
    (socket) => {
      socket.setNoDelay(noDelay);
      const conn = socket as TaggedConnection;
      conn[CONN_INFO] = { transport: "tls", sourceIp: normalizeIp(socket.remoteAddress), secure: true };
      handle(conn);
    },
  );
  // A failed handshake is the client's problem; never crash on it.
  server.on("tlsClientError", (_err, socket) => socket.destroy());
  const sockets = track(server);
  const bound = await listen(server, port, host);
  return { transport: "tls", host, port: bound, close: () => closeServer(server, sockets) };
}

/** Listen for MQTT over WebSocket (`ws://`, or `wss://` with a certificate). */
export async function listenWs(
  host: string,
  port: number,
  opts: { maxPayload: number; noDelay?: boolean; tls?: { key: string | Buffer; cert: string | Buffer } },
  handle: ConnectionHandler,
): Promise<Listener> {
  const secure = opts.tls !== undefined;
  const http = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }) : createHttpServer();
  http.on("request", (_req, res) => {
    res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
    res.end("this endpoint speaks MQTT over WebSocket (sub-protocol `mqtt`)\n");
  });
  const wss = new WebSocketServer({
    server: http,
    maxPayload: opts.maxPayload,
    // MQTT 3.1.1 §6: the sub-protocol is `mqtt` (`mqttv3.1` for 3.1 clients).
    handleProtocols: (protocols) => {
      for (const p of ["mqtt", "mqttv3.1"]) if (protocols.has(p)) return p;
      return false;
    },
  });
  wss.on("connection", (ws, req) => {
    req.socket.setNoDelay(opts.noDelay ?? true);
    const conn = createWebSocketStream(ws) as TaggedConnection;
    conn.on("error", () => conn.destroy());
    conn[CONN_INFO] = {
      transport: secure ? "wss" : "ws",
      sourceIp: normalizeIp(req.socket.remoteAddress),
      secure,
    };
    handle(conn, req);
  });
  wss.on("error", () => {});
  const sockets = track(http);
  const bound = await listen(http, port, host);
  return {
    transport: secure ? "wss" : "ws",
    host,
    port: bound,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await closeServer(http, sockets);
    },
  };
}
