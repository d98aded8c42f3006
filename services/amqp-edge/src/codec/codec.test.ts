import { describe, expect, it } from "vitest";
import { FRAME_BODY, FRAME_END, FRAME_METHOD, ReplyCode } from "./constants.ts";
import { CodecError, type FieldTable, Reader, tableEntries, truncateShortstr, Writer } from "./fields.ts";
import { type FrameHandler, FrameReader } from "./frames.ts";
import { decodeMethod, encodeMethodFrame } from "./methods.ts";
import { METHOD_SPECS, METHODS_BY_ID, methodKey } from "./spec.ts";

const payload = (frame: Buffer) => [frame, 7, frame.length - 1] as const;

describe("method table", () => {
  it("has unique ids and names, and the RabbitMQ extensions", () => {
    expect(METHODS_BY_ID.size).toBe(METHOD_SPECS.length);
    expect(new Set(METHOD_SPECS.map((s) => s.name)).size).toBe(METHOD_SPECS.length);
    expect(methodKey("basic.publish")).toBe((60 << 16) | 40);
    expect(methodKey("exchange.unbind-ok")).toBe((40 << 16) | 51);
    expect(methodKey("basic.nack")).toBe((60 << 16) | 120);
    expect(methodKey("connection.update-secret")).toBe((10 << 16) | 70);
    expect(() => methodKey("basic.nope")).toThrow(/no AMQP 0-9-1 method/);
  });
});

describe("method frames", () => {
  it("round-trips every method with packed bits", () => {
    const f = encodeMethodFrame(3, "queue.declare", {
      queue: "orders",
      passive: false,
      durable: true,
      exclusive: false,
      autoDelete: true,
      noWait: true,
      arguments: { "x-dead-letter-exchange": "dlx", "x-max-length": 10 },
    });
    expect(f[0]).toBe(FRAME_METHOD);
    expect(f.readUInt16BE(1)).toBe(3);
    expect(f.readUInt32BE(3)).toBe(f.length - 8);
    expect(f[f.length - 1]).toBe(FRAME_END);
    const m = decodeMethod(...payload(f));
    expect(m.spec.name).toBe("queue.declare");
    expect(m.args).toMatchObject({
      queue: "orders",
      passive: false,
      durable: true,
      exclusive: false,
      autoDelete: true,
      noWait: true,
    });
    expect({ ...(m.args.arguments as FieldTable) }).toEqual({
      "x-dead-letter-exchange": "dlx",
      "x-max-length": 10,
    });
    // the five bits share one octet: durable (bit 1), autoDelete (bit 3), noWait (bit 4)
    const bitsAt = 7 + 4 + 2 + 1 + "orders".length;
    expect(f[bitsAt]).toBe(0b11010);
  });

  it("decodes every method encoded with defaults", () => {
    for (const s of METHOD_SPECS) {
      const m = decodeMethod(...payload(encodeMethodFrame(1, s.name)));
      expect(m.spec).toBe(s);
    }
  });

  it("decodes deliveries with 64-bit delivery tags", () => {
    const f = encodeMethodFrame(1, "basic.deliver", {
      consumerTag: "ctag",
      deliveryTag: 2 ** 40 + 5,
      redelivered: true,
      exchange: "",
      routingKey: "rk",
    });
    expect(decodeMethod(...payload(f)).args).toMatchObject({ deliveryTag: 2 ** 40 + 5, redelivered: true });
  });

  it("refuses unknown methods with 503 and truncated or trailing arguments with 501", () => {
    const unknown = Buffer.from([0, 99, 0, 10]);
    expect(() => decodeMethod(unknown, 0, 4)).toThrow(
      expect.objectContaining({ code: ReplyCode.COMMAND_INVALID }),
    );
    const f = encodeMethodFrame(1, "basic.publish", { exchange: "e", routingKey: "k" });
    const [b, s, e] = payload(f);
    expect(() => decodeMethod(b, s, e - 2)).toThrow(expect.objectContaining({ code: ReplyCode.FRAME_ERROR }));
    const longer = Buffer.concat([b.subarray(s, e), Buffer.from([0])]);
    expect(() => decodeMethod(longer, 0, longer.length)).toThrow(/unexpected octets/);
  });
});

describe("field tables", () => {
  it("round-trips the RabbitMQ value types", () => {
    const t: FieldTable = {
      b: true,
      i: -5,
      big: 2 ** 40,
      d: 1.5,
      s: "héllo",
      x: Buffer.from([1, 2, 3]),
      arr: [1, "two", false],
      nested: { deeper: { v: null } },
      dec: { type: "decimal", scale: 2, value: 314 },
      ts: { type: "timestamp", value: 1_700_000_000 },
    };
    const w = new Writer(8);
    w.table(t);
    const r = new Reader(w.result(), 0, w.result().length);
    const back = r.table();
    expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(t)));
  });

  it("refuses an unknown value type with 502 and a truncated table with 501", () => {
    const bad = Buffer.from([1, 0x6b, 0x7a]); // key "k", type 'z'
    expect(() => tableEntries(bad, 0, bad.length)).toThrow(
      expect.objectContaining({ code: ReplyCode.SYNTAX_ERROR, name: "CodecError" }),
    );
    const cut = Buffer.from([1, 0x6b, 0x49, 0, 0]); // "k" → int32 with two octets
    expect(() => tableEntries(cut, 0, cut.length)).toThrow(CodecError);
  });

  it("does not let a key reach Object.prototype", () => {
    const w = new Writer();
    w.table({ ["__proto__"]: { polluted: true } } as FieldTable);
    const t = new Reader(w.result(), 0, w.result().length).table();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(t)).toBeNull();
  });

  it("truncates reply texts to 255 octets on a character boundary", () => {
    const s = truncateShortstr("é".repeat(200));
    expect(Buffer.byteLength(s)).toBeLessThanOrEqual(255);
    expect(s.endsWith("...")).toBe(true);
    expect(s).not.toContain("\uFFFD");
  });
});

/** Collects what a FrameReader hands over. */
function collector() {
  const frames: { type: number; channel: number; bytes: Buffer; split?: number }[] = [];
  const errors: { code: number; text: string }[] = [];
  const h: FrameHandler = {
    frame: (type, channel, buf, start, end) =>
      frames.push({ type, channel, bytes: buf.subarray(start, end) }),
    splitBody: (channel, pieces) =>
      frames.push({ type: FRAME_BODY, channel, bytes: Buffer.concat(pieces), split: pieces.length }),
    error: (code, text) => errors.push({ code, text }),
  };
  return { h, frames, errors };
}

const body = (channel: number, data: Buffer) => {
  const f = Buffer.alloc(data.length + 8);
  f[0] = FRAME_BODY;
  f.writeUInt16BE(channel, 1);
  f.writeUInt32BE(data.length, 3);
  data.copy(f, 7);
  f[f.length - 1] = FRAME_END;
  return f;
};

describe("frame reader", () => {
  const stream = Buffer.concat([
    encodeMethodFrame(1, "basic.publish", { exchange: "x", routingKey: "k" }),
    body(1, Buffer.alloc(3000, 7)),
    encodeMethodFrame(2, "channel.open"),
  ]);

  it("hands over frames of one chunk as views of the chunk (no copy)", () => {
    const c = collector();
    new FrameReader(c.h, 131072).push(stream);
    expect(c.frames.map((f) => f.type)).toEqual([1, 3, 1]);
    expect(c.frames[1]!.bytes.buffer).toBe(stream.buffer);
  });

  it("reassembles frames split at every possible point; split bodies stay pieces", () => {
    for (let cut = 1; cut < stream.length; cut += 97) {
      const c = collector();
      const r = new FrameReader(c.h, 131072);
      r.push(stream.subarray(0, cut));
      r.push(stream.subarray(cut));
      expect(Buffer.concat(c.frames.map((f) => f.bytes)).equals(stream)).toBe(true);
      expect(c.errors).toEqual([]);
    }
    const c = collector();
    const r = new FrameReader(c.h, 131072);
    for (const byte of stream) r.push(Buffer.from([byte]));
    expect(Buffer.concat(c.frames.map((f) => f.bytes)).equals(stream)).toBe(true);
    expect(c.frames[1]!.split).toBeGreaterThan(1);
  });

  it("refuses a bad frame-end, an unknown type and an oversize frame with 501, before buffering it", () => {
    const bad = Buffer.from(encodeMethodFrame(1, "channel.open"));
    bad[bad.length - 1] = 0;
    for (const input of [
      bad,
      Buffer.from([9, 0, 0, 0, 0, 0, 0, FRAME_END]),
      Buffer.from([1, 0, 1, 0, 1, 0, 0]),
    ]) {
      const c = collector();
      const r = new FrameReader(c.h, 4096);
      r.push(input);
      expect(c.errors[0]?.code).toBe(ReplyCode.FRAME_ERROR);
      expect(c.frames).toEqual([]);
      r.push(stream); // stopped: nothing more
      expect(c.frames).toEqual([]);
    }
  });

  it("holds frames while paused and replays them in order", () => {
    const c = collector();
    let paused = false;
    const r = new FrameReader(
      {
        ...c.h,
        frame: (...a) => {
          c.h.frame(...a);
          if (!paused) {
            paused = true;
            r.pause();
          }
        },
      },
      131072,
    );
    r.push(stream.subarray(0, 40));
    r.push(stream.subarray(40));
    expect(c.frames).toHaveLength(1);
    r.resume();
    expect(Buffer.concat(c.frames.map((f) => f.bytes)).equals(stream)).toBe(true);
  });
});

describe("codec fuzz (fast-check)", () => {
  it("decodeMethod throws nothing but CodecError on arbitrary payloads", async () => {
    const fc = (await import("fast-check")).default;
    const known = METHOD_SPECS.map((s) => [s.classId, s.methodId] as const);
    fc.assert(
      fc.property(fc.constantFrom(...known), fc.uint8Array({ maxLength: 64 }), ([c, m], rest) => {
        const b = Buffer.concat([Buffer.from([c >> 8, c & 255, m >> 8, m & 255]), Buffer.from(rest)]);
        try {
          decodeMethod(b, 0, b.length);
        } catch (e) {
          expect(e).toBeInstanceOf(CodecError);
          expect([501, 502, 503]).toContain((e as CodecError).code);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it("the frame reader reports every stream as frames plus at most one 501, whatever the chunking", async () => {
    const fc = (await import("fast-check")).default;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (data, chunk) => {
        const c = collector();
        const r = new FrameReader(c.h, 4096);
        const b = Buffer.from(data);
        for (let i = 0; i < b.length; i += chunk) r.push(b.subarray(i, i + chunk));
        expect(c.errors.length).toBeLessThanOrEqual(1);
        for (const e of c.errors) expect(e.code).toBe(ReplyCode.FRAME_ERROR);
        const used = c.frames.reduce((n, f) => n + f.bytes.length, 0);
        expect(b.subarray(0, used).equals(Buffer.concat(c.frames.map((f) => f.bytes)))).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("content properties", () => {
  const headerFrame = (flags: number, props: Buffer) => {
    const p = Buffer.alloc(14);
    p.writeUInt16BE(60, 0);
    p.writeUInt32BE(5, 8);
    p.writeUInt16BE(flags, 12);
    const payload = Buffer.concat([p, props]);
    const f = Buffer.alloc(payload.length + 8);
    f[0] = 2;
    f.writeUInt32BE(payload.length, 3);
    payload.copy(f, 7);
    f[f.length - 1] = FRAME_END;
    return f;
  };

  it("reads the headers after content-type and content-encoding, and the CC/BCC keys", async () => {
    const { contentHeaders, senderSelectedKeys } = await import("./properties.ts");
    const w = new Writer();
    w.shortstr("text/plain");
    w.shortstr("gzip");
    w.table({ CC: ["a.b", "c"], BCC: ["d"], other: 1 });
    const f = headerFrame(
      (1 << 15) | (1 << 14) | (1 << 13) | (1 << 2),
      Buffer.concat([w.result(), Buffer.from([9])]),
    );
    expect(senderSelectedKeys(contentHeaders(f, 0, f.length))).toEqual(["a.b", "c", "d"]);
    const none = headerFrame(1 << 15, Buffer.from([1, 0x78]));
    expect(contentHeaders(none, 0, none.length)).toBeUndefined();
    const cut = headerFrame(1 << 13, Buffer.from([0, 0, 0, 9, 1]));
    expect(() => contentHeaders(cut, 0, cut.length)).toThrow(CodecError);
    expect(() => senderSelectedKeys({ CC: [1] })).toThrow(/non-string routing key/);
  });
});
