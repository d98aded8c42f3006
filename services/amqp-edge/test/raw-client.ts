/**
 * A minimal AMQP 0-9-1 client over a raw socket, for what amqplib hides
 * (reply codes of a refused handshake) and for sending malformed input on
 * purpose. It frames with the edge's codec, which its own unit tests and
 * the relay tests against RabbitMQ check.
 */
import net from "node:net";
import { FRAME_END, PROTOCOL_HEADER } from "../src/codec/constants.ts";
import type { FieldTable } from "../src/codec/fields.ts";
import { FrameReader } from "../src/codec/frames.ts";
import { decodeMethod, encodeMethodFrame, type MethodArgs } from "../src/codec/methods.ts";

/** A frame of `type` on `channel` around `payload` (`end`: the frame-end octet, to send a wrong one). */
export function rawFrame(type: number, channel: number, payload: Buffer, end = FRAME_END): Buffer {
  const f = Buffer.alloc(payload.length + 8);
  f[0] = type;
  f.writeUInt16BE(channel, 1);
  f.writeUInt32BE(payload.length, 3);
  payload.copy(f, 7);
  f[f.length - 1] = end;
  return f;
}

/** A class-60 content header frame declaring `bodySize` octets, no properties. */
export function contentHeaderFrame(channel: number, bodySize: number): Buffer {
  const p = Buffer.alloc(14);
  p.writeUInt16BE(60, 0);
  p.writeUInt32BE(0, 4);
  p.writeUInt32BE(bodySize, 8);
  return rawFrame(2, channel, p);
}

/** A frame received by the raw client. */
export interface RawFrame {
  type: number;
  channel: number;
  /** Set for method frames. */
  method?: string;
  args?: MethodArgs;
  bytes: Buffer;
}

/** Options of a handshake. */
export interface RawLogin {
  username: string;
  password: string;
  vhost: string;
  mechanism?: "PLAIN" | "AMQPLAIN" | string;
  capabilities?: FieldTable;
  /** Raw SASL response, instead of one built from username/password. */
  response?: Buffer;
  heartbeat?: number;
}

/** A raw AMQP client. */
export class RawClient {
  readonly socket: net.Socket;
  readonly frames: RawFrame[] = [];
  /** Raw octets received that are not frames (a protocol header sent back). */
  raw = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  #reader: FrameReader;
  closedAt: number | undefined;
  readonly ended: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.#reader = new FrameReader(
      {
        frame: (type, channel, buf, start, end) => {
          const bytes = Buffer.from(buf.subarray(start, end));
          const f: RawFrame = { type, channel, bytes };
          if (type === 1) {
            try {
              const m = decodeMethod(bytes, 7, bytes.length - 1);
              f.method = m.spec.name;
              f.args = m.args;
            } catch {
              f.method = "<undecodable>";
            }
          }
          this.frames.push(f);
          this.#wake();
        },
        splitBody: (channel, pieces) => {
          this.frames.push({ type: 3, channel, bytes: Buffer.concat(pieces) });
          this.#wake();
        },
        error: () => {},
      },
      1 << 24,
    );
    let first = true;
    socket.on("data", (d: Buffer) => {
      if (first && d.subarray(0, 4).toString("latin1") === "AMQP") {
        this.raw = Buffer.concat([this.raw, d]);
        this.#wake();
        return;
      }
      first = false;
      this.#reader.push(d);
    });
    socket.on("error", () => {});
    this.ended = new Promise((r) =>
      socket.on("close", () => {
        this.closedAt = Date.now();
        this.#wake();
        r();
      }),
    );
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Open a TCP connection (nothing sent yet). */
  static open(port: number, host = "127.0.0.1"): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => resolve(new RawClient(s)));
      s.once("error", reject);
    });
  }

  /** Connect and perform the handshake up to connection.open (its answer is left in `frames`). */
  static async login(port: number, login: RawLogin): Promise<RawClient> {
    const c = await RawClient.open(port);
    c.write(PROTOCOL_HEADER);
    const start = await c.next((f) => f.method === "connection.start");
    if (!start) throw new Error("no connection.start");
    const mechanism = login.mechanism ?? "PLAIN";
    c.method(0, "connection.start-ok", {
      clientProperties: {
        product: "raw-client",
        capabilities: login.capabilities ?? {
          authentication_failure_close: true,
          consumer_cancel_notify: true,
        },
      },
      mechanism,
      response: login.response ?? Buffer.from(`\u0000${login.username}\u0000${login.password}`),
      locale: "en_US",
    });
    const tune = await c.next((f) => f.method === "connection.tune" || f.method === "connection.close");
    if (tune?.method !== "connection.tune") return c;
    c.method(0, "connection.tune-ok", {
      channelMax: tune.args!.channelMax,
      frameMax: tune.args!.frameMax,
      heartbeat: login.heartbeat ?? 0,
    });
    c.method(0, "connection.open", { virtualHost: login.vhost });
    await c.next((f) => f.method === "connection.open-ok" || f.method === "connection.close");
    return c;
  }

  write(b: Buffer | string): void {
    this.socket.write(b);
  }

  method(channel: number, name: string, args: MethodArgs = {}): void {
    this.socket.write(encodeMethodFrame(channel, name, args));
  }

  /** The first frame (from index `from`) matching `pred`, waiting up to `ms`; undefined on timeout or close. */
  async next(
    pred: (f: RawFrame) => boolean = () => true,
    ms = 5_000,
    from = 0,
  ): Promise<RawFrame | undefined> {
    const end = Date.now() + ms;
    for (;;) {
      const f = this.frames.slice(from).find(pred);
      if (f) return f;
      if (this.closedAt !== undefined || Date.now() > end) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, end - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The connection.close the server sent (waiting for it). */
  async connectionClose(ms = 5_000): Promise<MethodArgs | undefined> {
    return (await this.next((f) => f.method === "connection.close", ms))?.args;
  }

  /** Answer a server close with close-ok and end the socket. */
  closeOk(): void {
    this.method(0, "connection.close-ok");
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
