/**
 * Bad input (BRIEF rule 3): malformed packets and credentials, oversize packets,
 * invalid topics, a client id too long. Each gets a clear refusal (a CONNACK
 * code, a SUBACK 0x80, or a closed connection with a log line) and the edge keeps
 * serving everyone else. Raw bytes over TCP, so nothing is tidied up by a client library.
 */
import { connect as netConnect, type Socket } from "node:net";
import { mqttConnect, mqttPacket, mqttString, mqttVarint } from "@portcullis/testkit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { MqttEdge } from "../src/mod.ts";
import { mqttPassword, mqttUsername } from "../src/mod.ts";
import { Inbox, type Key, World } from "./world.ts";

// --- raw packets (the encoder is @portcullis/testkit's; OASIS MQTT 3.1.1 §2, §3) ---------------
const varint = mqttVarint;
const str = mqttString;
const packet = mqttPacket;
const connectPacket = (clientId: string, username?: string, password?: string | Buffer, protocol = "MQTT") =>
  mqttConnect(clientId, { username, password, protocol, keepAliveS: 60 });
const publishPacket = (topic: string | Buffer, payload: string, qos = 0, id = 1) =>
  packet(
    0x30 | (qos << 1),
    Buffer.concat([str(topic), ...(qos > 0 ? [Buffer.from([id >> 8, id & 255])] : []), Buffer.from(payload)]),
  );
const subscribePacket = (id: number, ...filters: (string | Buffer)[]) =>
  packet(
    0x82,
    Buffer.concat([Buffer.from([id >> 8, id & 255]), ...filters.flatMap((f) => [str(f), Buffer.from([0])])]),
  );
const unsubscribePacket = (id: number, ...filters: string[]) =>
  packet(0xa2, Buffer.concat([Buffer.from([id >> 8, id & 255]), ...filters.map((f) => str(f))]));

/** A raw TCP conversation: everything the server sent, and whether it closed the connection. */
class Raw {
  readonly socket: Socket;
  received = Buffer.alloc(0);
  closed: Promise<void>;
  constructor(port: number) {
    this.socket = netConnect(port, "127.0.0.1");
    this.socket.on("data", (d) => {
      this.received = Buffer.concat([this.received, d]);
    });
    this.socket.on("error", () => {});
    this.closed = new Promise((r) => this.socket.once("close", () => r()));
  }
  send(...chunks: Buffer[]): this {
    for (const c of chunks) this.socket.write(c);
    return this;
  }
  /** Wait until at least `n` bytes arrived (or the socket closed). */
  async bytes(n: number, ms = 5_000): Promise<Buffer> {
    const t0 = Date.now();
    while (this.received.length < n && !this.socket.destroyed && Date.now() - t0 < ms) {
      await new Promise((r) => this.socket.once("data", r).once("close", r));
    }
    return this.received;
  }
  /** Resolves when the server closed the connection (rejects after `ms`). */
  closedWithin(ms = 5_000): Promise<void> {
    return Promise.race([
      this.closed,
      new Promise<void>((_, rej) =>
        setTimeout(() => rej(new Error("server did not close the connection")), ms),
      ),
    ]);
  }
}

let w: World;
let edge: MqttEdge;
let key: Key;
const MAX = 64 * 1024;
const good = (clientId: string) =>
  connectPacket(clientId, mqttUsername(key.accessKeyId, "mqtt-local"), mqttPassword(key.secret, clientId));

beforeAll(async () => {
  w = await World.create();
  key = await w.key("root");
  await w.topic("a");
  await w.groupId("GID_shared");
  edge = await w.edge({ maxPacketSize: MAX, connectTimeoutMs: 300 });
});
afterAll(async () => w?.close());

/** The edge still serves a normal client end to end. */
async function stillServing(tag: string): Promise<void> {
  const c = await w.connect(`mqtt://127.0.0.1:${edge.port}`, key, `GID_shared@@@${tag}`);
  const inbox = new Inbox(c);
  await c.subscribeAsync("a/#");
  await c.publishAsync("a/ok", tag);
  await inbox.waitFor(tag);
  await c.endAsync();
}

describe("malformed packets", () => {
  test.each<[string, Buffer]>([
    ["bytes that are not MQTT", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
    [
      "a CONNECT with an unknown protocol name",
      connectPacket("GID_shared@@@x", undefined, undefined, "HTTP"),
    ],
    ["a CONNECT with reserved flag bits set", Buffer.from([0x11, 0x00])],
    ["a remaining length of five bytes", Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])],
    ["a PUBLISH before CONNECT [MQTT-3.1.0-1]", publishPacket("a/x", "early")],
    [
      "a CONNECT whose strings run past its length",
      Buffer.from([0x10, 0x06, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54]),
    ],
  ])("%s: the connection is closed, nothing else happens", async (_name, bytes) => {
    const raw = new Raw(edge.port).send(bytes);
    await raw.closedWithin();
    await stillServing(`after-${raw.socket.localPort}`);
  });

  test("a second CONNECT on a connection closes it [MQTT-3.1.0-2]", async () => {
    const raw = new Raw(edge.port).send(good("GID_shared@@@twice"));
    const ack = await raw.bytes(4);
    expect([...ack.subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
    raw.send(good("GID_shared@@@twice"));
    await raw.closedWithin();
  });

  test("a connection that never sends CONNECT is closed after the connect timeout", async () => {
    const raw = new Raw(edge.port);
    await raw.closedWithin(3_000);
    expect(raw.received.length).toBe(0);
  });

  test("a truncated CONNECT followed by a hang-up leaves no session behind", async () => {
    const raw = new Raw(edge.port).send(good("GID_shared@@@cut").subarray(0, 10));
    raw.socket.end();
    await raw.closed;
    expect(edge.sessions().some((s) => s.clientId === "GID_shared@@@cut")).toBe(false);
  });
});

describe("packets sent before the CONNACK", () => {
  test("an UNSUBSCRIBE that arrives before authentication finished names the client's own filters", async () => {
    // One write: aedes queues what follows CONNECT until the session exists; the edge names the
    // UNSUBSCRIBE's filters in the session's namespace once it does (see namespaceUnsubscribe).
    const raw = new Raw(edge.port).send(
      Buffer.concat([
        good("GID_shared@@@early-unsub"),
        subscribePacket(1, "a/early", "a/kept"),
        unsubscribePacket(2, "a/early"),
      ]),
    );
    // CONNACK (4 bytes), SUBACK for two filters (6), UNSUBACK (4).
    const got = await raw.bytes(14);
    expect([...got.subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
    expect([...got.subarray(4, 10)]).toEqual([0x90, 0x04, 0x00, 0x01, 0x00, 0x00]);
    expect([...got.subarray(10, 14)]).toEqual([0xb0, 0x02, 0x00, 0x02]);
    expect(edge.sessions().find((s) => s.clientId === "GID_shared@@@early-unsub")?.subscriptions).toEqual([
      { filter: "a/kept", qos: 0 },
    ]);
    raw.socket.destroy();
  });
});

describe("oversize packets", () => {
  test("a packet announcing more than maxPacketSize is refused from its header, before the payload", async () => {
    const raw = new Raw(edge.port).send(good("GID_shared@@@big"));
    await raw.bytes(4);
    const before = (await edge.registry.metrics()).match(/portcullis_mqtt_protocol_errors_total (\d+)/)![1];
    // Fixed header of a 10 MB PUBLISH and only 3 bytes of it: the edge must not wait for the rest.
    raw.send(Buffer.from([0x30, ...varint(10 * 1024 * 1024)]), Buffer.from([0x00, 0x01, 0x61]));
    await raw.closedWithin();
    const after = (await edge.registry.metrics()).match(/portcullis_mqtt_protocol_errors_total (\d+)/)![1];
    expect(Number(after)).toBe(Number(before) + 1);
    const line = w.log
      .messages("mqtt connection closed on error")
      .find((l) => String(l.error).includes("exceeds the limit of 65536 bytes"));
    expect(line).toMatchObject({ clientId: "GID_shared@@@big" });
    await stillServing("after-big");
  });

  test("an oversize CONNECT is refused too; a packet just at the limit is fine", async () => {
    const raw = new Raw(edge.port).send(Buffer.from([0x10, ...varint(MAX + 1)]));
    await raw.closedWithin();
    const ok = await w.connect(`mqtt://127.0.0.1:${edge.port}`, key, "GID_shared@@@limit");
    const inbox = new Inbox(ok);
    await ok.subscribeAsync("a/#");
    const payload = "x".repeat(MAX - 2 - "a/limit".length - 2); // remaining length = MAX exactly (QoS 1 id: 2 bytes)
    await ok.publishAsync("a/limit", payload, { qos: 1 });
    await inbox.until((m) => m.some((x) => x.topic === "a/limit"));
    expect(inbox.messages[0]!.payload.length).toBe(payload.length);
  });

  test("the WebSocket listener refuses oversize frames as well", async () => {
    const wsEdge = await w.edge({ maxPacketSize: 1024, ws: { port: 0 } });
    const c = await w.connect(`ws://127.0.0.1:${wsEdge.wsPort}`, key, "GID_shared@@@ws-big");
    const closed = new Promise<void>((r) => c.once("close", () => r()));
    c.publish("a/big", "y".repeat(4096));
    await closed;
  });
});

describe("malformed credentials", () => {
  const connack = async (bytes: Buffer): Promise<number[]> => {
    const raw = new Raw(edge.port).send(bytes);
    const b = await raw.bytes(4);
    await raw.closedWithin();
    return [...b.subarray(0, 4)];
  };
  test.each<[string, () => Buffer, number]>([
    [
      "a password that is not UTF-8",
      () =>
        connectPacket(
          "GID_shared@@@p",
          mqttUsername(key.accessKeyId, "mqtt-local"),
          Buffer.from([0xff, 0xfe, 0xfd]),
        ),
      4,
    ],
    ["a password without a username", () => connectPacket("GID_shared@@@p", undefined, undefined), 4],
    [
      "a 20 KB username",
      () => connectPacket("GID_shared@@@p", `Signature|${"k".repeat(20_000)}|mqtt-local`, "x"),
      4,
    ],
    ["a username of another scheme", () => connectPacket("GID_shared@@@p", "DeviceCredential|a|b", "x"), 4],
    ["a client id of 65 characters", () => good(`GID_shared@@@${"d".repeat(52)}`), 2],
    ["a client id without `@@@`", () => good("GID_shared-d"), 2],
    ["an empty client id", () => connectPacket("", mqttUsername(key.accessKeyId, "mqtt-local"), "x"), 2],
  ])("%s → CONNACK %i", async (_name, bytes, rc) => {
    expect(await connack(bytes())).toEqual([0x20, 0x02, 0x00, rc]);
  });
});

describe("invalid topics", () => {
  const session = async (clientId: string): Promise<Raw> => {
    const raw = new Raw(edge.port).send(good(clientId));
    expect([...(await raw.bytes(4)).subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
    raw.received = Buffer.alloc(0);
    return raw;
  };

  test.each<[string, Buffer]>([
    ["a PUBLISH with `+` [MQTT-3.3.2-2]", publishPacket("a/+/x", "w")],
    ["a PUBLISH with `#`", publishPacket("a/#", "w")],
    ["a PUBLISH with an empty topic [MQTT-4.7.3-1]", publishPacket("", "w")],
    ["a PUBLISH with 200 topic levels", publishPacket(`a/${"x/".repeat(200)}y`, "w")],
    ["a SUBSCRIBE with `#` not last [MQTT-4.7.1-2]", subscribePacket(7, "a/#/b")],
    ["a SUBSCRIBE with an empty filter", subscribePacket(7, "")],
  ])("%s: the connection is closed", async (_name, bytes) => {
    const raw = await session(`GID_shared@@@t${Math.random().toString(36).slice(2, 8)}`);
    raw.send(bytes);
    await raw.closedWithin();
  });

  test("U+0000 in a topic [MQTT-4.7.3-2]: PUBLISH acknowledged and dropped, SUBSCRIBE filter refused (0x80)", async () => {
    const raw = await session("GID_shared@@@nul");
    raw.send(publishPacket(Buffer.from("a/x\u0000y"), "nul", 1, 9));
    const puback = await raw.bytes(4);
    expect([...puback.subarray(0, 4)]).toEqual([0x40, 0x02, 0x00, 0x09]);
    raw.received = Buffer.alloc(0);
    raw.send(subscribePacket(11, Buffer.from("a/\u0000/#"), "a/#"));
    const suback = await raw.bytes(6);
    expect([...suback.subarray(0, 6)]).toEqual([0x90, 0x04, 0x00, 0x0b, 0x80, 0x00]);
    expect(raw.socket.destroyed).toBe(false);
    raw.socket.destroy();
    expect(w.log.messages("mqtt denied").some((l) => String(l.reason).includes("U+0000"))).toBe(true);
  });

  test("`$` topics from clients: PUBLISH dropped, SUBSCRIBE refused", async () => {
    const raw = await session("GID_shared@@@dollar");
    raw.send(subscribePacket(3, "$SYS/#", "$share/g/a/#", "a/#"));
    const suback = await raw.bytes(7);
    expect([...suback.subarray(0, 7)]).toEqual([0x90, 0x05, 0x00, 0x03, 0x80, 0x80, 0x00]);
    raw.socket.destroy();
  });
});
