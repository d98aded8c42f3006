/**
 * Bad input (BRIEF rule 3, issue 6): garbage around the protocol header,
 * truncated and oversize frames, a wrong frame-end octet, unknown methods,
 * methods on unopened channels, content out of place, bad handshakes — each
 * answered with connection.close and the right reply code (or, for a bad
 * protocol header, our header and a close, AMQP 0-9-1 §4.2.2). The edge never
 * crashes, and an unrelated connection keeps working throughout. Plus a
 * bounded, seeded fuzz run.
 */
import type * as amqplib from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROTOCOL_HEADER } from "../src/codec/constants.ts";
import { encodeMethodFrame } from "../src/codec/methods.ts";
import { METHOD_SPECS } from "../src/codec/spec.ts";
import { type AmqpEdge, amqpPassword, amqpUsername } from "../src/mod.ts";
import { rawFrame as frame, contentHeaderFrame as header, RawClient } from "./raw-client.ts";
import { connect, createVhost, edgeFor, until, World } from "./world.ts";

let world: World;
let edge: AmqpEdge;
let V: string;
let removeVhost: () => Promise<void>;
let rootKey: string;
let bystander: amqplib.ChannelModel;
let bystanderCh: amqplib.Channel;

const login = () => ({
  username: amqpUsername("amqp-local", rootKey),
  password: amqpPassword(world.secrets.get(rootKey)!),
  vhost: V,
});

/** A logged-in raw client with channel 1 open. */
async function session(): Promise<RawClient> {
  const c = await RawClient.login(edge.port, login());
  expect(c.frames.some((f) => f.method === "connection.open-ok")).toBe(true);
  c.method(1, "channel.open");
  await c.next((f) => f.method === "channel.open-ok");
  return c;
}

/** Send `bytes`, expect connection.close with `code` (text matching `text`), answer close-ok. */
async function expectClose(c: RawClient, bytes: Buffer | Buffer[], code: number, text?: RegExp) {
  for (const b of [bytes].flat()) c.write(b);
  const close = await c.connectionClose();
  expect(close, `connection.close ${code}`).toBeDefined();
  expect(close!.replyCode).toBe(code);
  if (text) expect(String(close!.replyText)).toMatch(text);
  c.closeOk();
  await c.ended;
  return close!;
}

async function bystanderWorks(): Promise<void> {
  const { queue } = await bystanderCh.assertQueue("", { exclusive: true });
  bystanderCh.sendToQueue(queue, Buffer.from("still here"));
  await until(
    async () => (await bystanderCh.checkQueue(queue)).messageCount === 1,
    5_000,
    "bystander publish",
  );
  const m = await bystanderCh.get(queue, { noAck: true });
  expect(m ? m.content.toString() : m).toBe("still here");
}

beforeAll(async () => {
  ({ name: V, remove: removeVhost } = await createVhost());
  world = new World();
  await world.start();
  await world.account();
  rootKey = await world.key("root");
  ({ edge } = await edgeFor(world, { handshakeTimeoutMs: 2_000, closeTimeoutMs: 1_000 }));
  bystander = await connect(world, edge, rootKey, V);
  bystanderCh = await bystander.createChannel();
});

afterAll(async () => {
  await bystander?.close().catch(() => {});
  await edge?.close();
  await world?.close();
  await removeVhost?.();
});

describe("around the protocol header (AMQP 0-9-1 §4.2.2)", () => {
  for (const [name, bytes] of [
    ["garbage before the header", Buffer.concat([Buffer.from("GARBAGE!"), PROTOCOL_HEADER])],
    ["an HTTP request", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
    ["an AMQP 1.0 header", Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 1, 0, 0])],
    ["an AMQP 0-8 header", Buffer.from([0x41, 0x4d, 0x51, 0x50, 1, 1, 8, 0])],
  ] as const) {
    it(`${name}: the edge answers with its own header and closes`, async () => {
      const c = await RawClient.open(edge.port);
      c.write(bytes);
      await c.ended;
      expect(c.raw.equals(PROTOCOL_HEADER)).toBe(true);
      expect(c.frames).toEqual([]);
    });
  }

  it("garbage right after the header: connection.close 501", async () => {
    const c = await RawClient.open(edge.port);
    c.write(Buffer.concat([PROTOCOL_HEADER, Buffer.from("hello, this is not a frame at all")]));
    const close = await c.connectionClose();
    expect(close?.replyCode).toBe(501);
    await c.ended;
  });

  it("a header that never completes is dropped at the handshake timeout", async () => {
    const c = await RawClient.open(edge.port);
    c.write(PROTOCOL_HEADER.subarray(0, 5));
    await c.ended;
    expect(c.frames).toEqual([]);
  });

  it("garbage after the last frame of a session: 501", async () => {
    const c = await session();
    await expectClose(
      c,
      Buffer.from([0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8]),
      501,
      /unknown frame type 255/,
    );
  });
});

describe("frames", () => {
  it("a wrong frame-end octet: 501", async () => {
    const c = await session();
    const f = encodeMethodFrame(1, "basic.qos", { prefetchCount: 1 });
    f[f.length - 1] = 0x00;
    await expectClose(c, f, 501, /frame-end octet is 0x0, not 0xce/);
  });

  it("an unknown frame type: 501", async () => {
    await expectClose(await session(), frame(9, 1, Buffer.alloc(0)), 501, /unknown frame type 9/);
  });

  it("a frame larger than frame-max: 501, decided on the header (the payload is never sent)", async () => {
    const c = await session();
    const h = Buffer.alloc(7);
    h[0] = 1;
    h.writeUInt16BE(1, 1);
    h.writeUInt32BE(10_000_000, 3);
    await expectClose(c, h, 501, /exceeds the negotiated frame-max of 131072/);
  });

  it("a truncated method (arguments cut short): 501, as RabbitMQ's `cannot decode`", async () => {
    const c = await session();
    const good = encodeMethodFrame(1, "queue.declare", { queue: "abcdef" });
    const payload = good.subarray(7, good.length - 1);
    await expectClose(c, frame(1, 1, payload.subarray(0, 9)), 501, /truncated/);
  });

  it("trailing octets after a method's arguments: 501", async () => {
    const c = await session();
    const good = encodeMethodFrame(1, "basic.qos", { prefetchCount: 1 });
    const payload = Buffer.concat([good.subarray(7, good.length - 1), Buffer.from([1, 2, 3])]);
    await expectClose(c, frame(1, 1, payload), 501, /unexpected octets/);
  });

  it("an illegal field-table value type: 502", async () => {
    const c = await session();
    const good = encodeMethodFrame(1, "queue.declare", { queue: "q", arguments: { k: 1 } });
    const bad = Buffer.from(good);
    bad[bad.indexOf(Buffer.from([1, 0x6b, 0x49])) + 2] = 0x7a; // k: type 'I' → 'z'
    await expectClose(c, bad, 502, /unknown field value type `z`/);
  });

  it("a frame cut off by the client closing: no answer, no leak", async () => {
    const before = edge.connections().length;
    const c = await session();
    const f = encodeMethodFrame(1, "queue.declare", { queue: "cut" });
    c.write(f.subarray(0, 10));
    c.socket.end();
    await c.ended;
    await until(() => edge.connections().length === before, 5_000, "the connection forgotten");
  });
});

describe("methods", () => {
  it("an unknown class or method: 503", async () => {
    await expectClose(
      await session(),
      frame(1, 1, Buffer.from([0, 99, 0, 10])),
      503,
      /unknown method 99\/10/,
    );
    await expectClose(
      await session(),
      frame(1, 1, Buffer.from([0, 20, 0, 99])),
      503,
      /unknown method 20\/99/,
    );
  });

  it("a method only servers send: 503", async () => {
    const c = await session();
    await expectClose(c, encodeMethodFrame(1, "basic.deliver", { consumerTag: "x" }), 503, /sent by servers/);
  });

  it("a method on a channel that was never opened: 504", async () => {
    const c = await session();
    await expectClose(
      c,
      encodeMethodFrame(7, "queue.declare", { queue: "q" }),
      504,
      /expected 'channel.open'/,
    );
  });

  it("a second channel.open: 504", async () => {
    await expectClose(await session(), encodeMethodFrame(1, "channel.open"), 504, /second 'channel.open'/);
  });

  it("a channel above channel-max: 504", async () => {
    await expectClose(
      await session(),
      encodeMethodFrame(3000, "channel.open"),
      504,
      /above the negotiated channel_max/,
    );
  });

  it("a channel method on channel 0: 504", async () => {
    await expectClose(
      await session(),
      encodeMethodFrame(0, "basic.qos", {}),
      504,
      /unexpected method basic.qos/,
    );
  });
});

describe("content out of place", () => {
  it("a content header without basic.publish: 505", async () => {
    await expectClose(await session(), header(1, 5), 505, /expected method frame/);
  });

  it("a body frame without a header: 505", async () => {
    await expectClose(await session(), frame(3, 1, Buffer.from("x")), 505, /content body frame/);
  });

  it("a method where a content header is expected: 505", async () => {
    const c = await session();
    await expectClose(
      c,
      [encodeMethodFrame(1, "basic.publish", { routingKey: "x" }), encodeMethodFrame(1, "basic.qos", {})],
      505,
      /expected content header/,
    );
  });

  it("a body longer than the header declared: 505", async () => {
    const c = await session();
    await expectClose(
      c,
      [
        encodeMethodFrame(1, "basic.publish", { routingKey: "x" }),
        header(1, 1),
        frame(3, 1, Buffer.from("xy")),
      ],
      505,
      /exceeds the 1 octets left/,
    );
  });

  it("content on channel 0 and heartbeats on channel 1: 505", async () => {
    await expectClose(await session(), frame(3, 0, Buffer.from("x")), 505, /channel 0/);
    await expectClose(await session(), frame(8, 1, Buffer.alloc(0)), 505, /heartbeat frame on channel 1/);
  });
});

describe("handshake", () => {
  it("a method out of order: 503", async () => {
    const c = await RawClient.open(edge.port);
    c.write(PROTOCOL_HEADER);
    await c.next((f) => f.method === "connection.start");
    await expectClose(
      c,
      encodeMethodFrame(0, "connection.open", { virtualHost: V }),
      503,
      /expected connection.start-ok/,
    );
  });

  it("an unknown SASL mechanism: 503", async () => {
    const c = await RawClient.login(edge.port, { ...login(), mechanism: "EXTERNAL" });
    const close = await c.connectionClose();
    expect(close?.replyCode).toBe(503);
    expect(String(close?.replyText)).toContain("unknown authentication mechanism 'EXTERNAL'");
  });

  it("AMQPLAIN works; a malformed AMQPLAIN response is refused with 403", async () => {
    const { Writer } = await import("../src/codec/fields.ts");
    const w = new Writer();
    w.table({ LOGIN: login().username, PASSWORD: login().password });
    const ok = await RawClient.login(edge.port, {
      ...login(),
      mechanism: "AMQPLAIN",
      response: w.result().subarray(4),
    });
    expect(ok.frames.some((f) => f.method === "connection.open-ok")).toBe(true);
    ok.destroy();
    const bad = await RawClient.login(edge.port, {
      ...login(),
      mechanism: "AMQPLAIN",
      response: Buffer.from([3, 1, 2]),
    });
    const close = await bad.connectionClose();
    expect(close?.replyCode).toBe(403);
    expect(String(close?.replyText)).toContain("malformed AMQPLAIN response");
  });

  it("wrong secret, unknown key, other instance, stale timestamp: 403 with what went wrong", async () => {
    const cases: [Partial<ReturnType<typeof login>>, RegExp][] = [
      [{ password: amqpPassword("wrong-secret") }, /invalid credentials/],
      [{ username: amqpUsername("amqp-local", "LTAIdoesnotexist") }, /invalid credentials/],
      [{ username: amqpUsername("amqp-other", rootKey) }, /instance `amqp-other` is not served here/],
      [{ password: amqpPassword(world.secrets.get(rootKey)!, Date.now() - 3_600_000) }, /clock/],
      [{ username: "not base64!" }, /username is not Base64/],
    ];
    for (const [override, text] of cases) {
      const c = await RawClient.login(edge.port, { ...login(), ...override });
      const close = await c.connectionClose();
      expect(close?.replyCode).toBe(403);
      expect(String(close?.replyText)).toMatch(
        /^ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN/,
      );
      expect(String(close?.replyText)).toMatch(text);
      expect([close?.classId, close?.methodId]).toEqual([10, 11]);
      c.closeOk();
    }
  });

  it("without authentication_failure_close a failed login just closes the socket (as RabbitMQ)", async () => {
    const c = await RawClient.login(edge.port, {
      ...login(),
      password: amqpPassword("nope"),
      capabilities: {},
    });
    await c.ended;
    expect(c.frames.some((f) => f.method === "connection.close")).toBe(false);
  });

  it("a tune-ok above the proposed frame-max: 530", async () => {
    const c = await RawClient.open(edge.port);
    c.write(PROTOCOL_HEADER);
    await c.next((f) => f.method === "connection.start");
    const l = login();
    c.method(0, "connection.start-ok", {
      clientProperties: {},
      mechanism: "PLAIN",
      response: Buffer.from(`\u0000${l.username}\u0000${l.password}`),
      locale: "en_US",
    });
    await c.next((f) => f.method === "connection.tune");
    await expectClose(
      c,
      encodeMethodFrame(0, "connection.tune-ok", { channelMax: 10, frameMax: 1 << 24 }),
      530,
      /frame_max/,
    );
  });

  it("a vhost the upstream does not have: RabbitMQ's own 530, passed through", async () => {
    const c = await RawClient.login(edge.port, { ...login(), vhost: `${V}-missing` });
    const close = await c.connectionClose();
    expect(close?.replyCode).toBe(530);
    expect(String(close?.replyText)).toMatch(/NOT_ALLOWED/);
  });
});

/** A small deterministic PRNG (mulberry32) so a failing fuzz case can be replayed from its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("fuzz (bounded)", () => {
  it("random frame sequences never crash the edge nor disturb other connections", async () => {
    const seed = Number(process.env.AMQP_FUZZ_SEED ?? 20251101);
    const rounds = Number(process.env.AMQP_FUZZ_ROUNDS ?? 50);
    const rnd = prng(seed);
    const int = (n: number) => Math.floor(rnd() * n);
    const bytes = (n: number) => Buffer.from([...Array(n)].map(() => int(256)));
    const specs = METHOD_SPECS.filter((s) => s.sender !== "s");
    const pieces: (() => Buffer)[] = [
      () => encodeMethodFrame(int(3), "channel.open"),
      () => frame(1, int(3), Buffer.concat([bytes(4), bytes(int(20))])),
      () => {
        const s = specs[int(specs.length)]!;
        const f = Buffer.from(
          encodeMethodFrame(1 + int(2), s.name, { queue: "fz", exchange: "", routingKey: "fz" }),
        );
        if (rnd() < 0.5 && f.length > 12) f[7 + 4 + int(f.length - 12)] = int(256); // flip an argument octet
        return f;
      },
      () => header(1, int(10)),
      () => frame(3, 1, bytes(int(12))),
      () => frame(8, int(2), Buffer.alloc(0)),
      () => bytes(1 + int(16)),
      () => {
        const f = Buffer.from(encodeMethodFrame(1, "basic.publish", { routingKey: "fz" }));
        return f.subarray(0, 1 + int(f.length));
      },
    ];
    const allowedCodes = new Set([320, 403, 404, 405, 406, 501, 502, 503, 504, 505, 506, 530, 540]);
    const codes = new Map<number, number>();
    for (let round = 0; round < rounds; round++) {
      const c = await RawClient.login(edge.port, login());
      const parts = [...Array(1 + int(6))].map(() => pieces[int(pieces.length)]!());
      // mostly on an open channel, so that the deeper paths (checks, forwarding, content) are reached
      if (rnd() < 0.7) parts.unshift(encodeMethodFrame(1, "channel.open"));
      for (const p of parts) c.write(p);
      const close = await c.next((f) => f.method === "connection.close", 300);
      if (close) {
        const code = close.args!.replyCode as number;
        codes.set(code, (codes.get(code) ?? 0) + 1);
        expect(
          allowedCodes.has(code),
          `seed ${seed} round ${round}: reply code ${code} ${close.args!.replyText}`,
        ).toBe(true);
        c.closeOk();
      }
      c.destroy();
      await c.ended;
    }
    if (process.env.AMQP_FUZZ_REPORT) console.log("fuzz reply codes", Object.fromEntries(codes));
    expect(codes.size).toBeGreaterThan(1); // the run did reach several error paths
    await bystanderWorks();
    await until(() => edge.connections().length === 1, 10_000, "fuzz connections all closed");
  });

  it("the bystander connection is still fine after everything above", async () => {
    await bystanderWorks();
  });
});
