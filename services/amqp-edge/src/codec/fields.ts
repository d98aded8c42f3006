/**
 * Field tables and primitive types of AMQP 0-9-1 (AMQP 0-9-1 §4.2.5, with
 * the field-value tags RabbitMQ uses — the spec errata: `t b B s u I i l f d D
 * S A T F V x`). A Reader decodes from a byte range with bounds checks (every
 * overrun is a CodecError, reply code 501); a Writer encodes into a growing
 * buffer (used only for the frames the edge itself originates).
 */
import { ReplyCode } from "./constants.ts";

/**
 * A malformed encoding; `code` is the reply code to close the connection with:
 * 501 FRAME_ERROR when the octets cannot be decoded (truncated or trailing
 * arguments — RabbitMQ's "cannot decode"), 502 SYNTAX_ERROR for an illegal
 * value (an unknown field-value type), 503 COMMAND_INVALID for an unknown method.
 */
export class CodecError extends Error {
  override name = "CodecError";
  readonly code: number;
  constructor(message: string, code: number = ReplyCode.FRAME_ERROR) {
    super(message);
    this.code = code;
  }
}

/** An AMQP decimal: `value / 10^scale`. */
export interface Decimal {
  readonly type: "decimal";
  readonly scale: number;
  readonly value: number;
}

/** An AMQP timestamp (seconds since the epoch). */
export interface Timestamp {
  readonly type: "timestamp";
  readonly value: number;
}

/** A decoded field value. */
export type FieldValue =
  | boolean
  | number
  | bigint
  | string
  | Buffer
  | Decimal
  | Timestamp
  | null
  | FieldValue[]
  | FieldTable;

/** A decoded field table (AMQP 0-9-1 §4.2.5.5). */
export interface FieldTable {
  [key: string]: FieldValue;
}

const TWO_32 = 4294967296;

/** Decodes primitives from `buf[pos, end)`. */
export class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    pos: number,
    readonly end: number,
  ) {
    this.pos = pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw new CodecError(
        `truncated ${what}: needs ${n} octets at offset ${this.pos}, frame has ${this.end - this.pos}`,
      );
    }
  }

  octet(): number {
    this.need(1, "octet");
    return this.buf[this.pos++]!;
  }

  short(): number {
    this.need(2, "short");
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  long(): number {
    this.need(4, "long");
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** An unsigned 64-bit integer as a number (exact below 2^53, which delivery tags never reach). */
  longlong(): number {
    this.need(8, "longlong");
    const v = this.buf.readUInt32BE(this.pos) * TWO_32 + this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return v;
  }

  shortstr(): string {
    const n = this.octet();
    this.need(n, "shortstr");
    const s = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A longstr as a view of the frame (not copied). */
  longstr(): Buffer {
    const n = this.long();
    this.need(n, "longstr");
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  table(): FieldTable {
    const n = this.long();
    this.need(n, "table");
    const end = this.pos + n;
    const t = tableEntries(this.buf, this.pos, end);
    this.pos = end;
    return t;
  }
}

/** Decode the entries of a field table that occupies exactly `buf[pos, end)` (no length prefix). */
export function tableEntries(buf: Buffer, pos: number, end: number): FieldTable {
  const r = new Reader(buf, pos, end);
  const t: FieldTable = Object.create(null);
  while (r.pos < end) {
    const k = r.shortstr();
    t[k] = fieldValue(r);
  }
  return t;
}

function fieldValue(r: Reader): FieldValue {
  const tag = r.octet();
  const b = r.buf;
  const at = (n: number) => {
    if (r.pos + n > r.end) throw new CodecError(`truncated field value \`${String.fromCharCode(tag)}\``);
    const p = r.pos;
    r.pos += n;
    return p;
  };
  switch (tag) {
    case 0x74: // t
      return b[at(1)] !== 0;
    case 0x62: // b
      return b.readInt8(at(1));
    case 0x42: // B
      return b.readUInt8(at(1));
    case 0x73: // s (RabbitMQ: signed 16-bit)
      return b.readInt16BE(at(2));
    case 0x75: // u
      return b.readUInt16BE(at(2));
    case 0x49: // I
      return b.readInt32BE(at(4));
    case 0x69: // i
      return b.readUInt32BE(at(4));
    case 0x6c: {
      // l
      const v = b.readBigInt64BE(at(8));
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 0x66: // f
      return b.readFloatBE(at(4));
    case 0x64: // d
      return b.readDoubleBE(at(8));
    case 0x44: {
      // D
      const scale = b.readUInt8(at(1));
      return { type: "decimal", scale, value: b.readInt32BE(at(4)) };
    }
    case 0x53: // S
      return r.longstr().toString("utf8");
    case 0x78: // x
      return Buffer.from(r.longstr());
    case 0x41: {
      // A
      const n = r.long();
      const end = at(n) + n;
      const sub = new Reader(b, end - n, end);
      const out: FieldValue[] = [];
      while (sub.pos < end) out.push(fieldValue(sub));
      return out;
    }
    case 0x54: // T
      return { type: "timestamp", value: r.longlong() };
    case 0x46: // F
      return r.table();
    case 0x56: // V
      return null;
    default:
      throw new CodecError(
        `unknown field value type \`${String.fromCharCode(tag)}\` (0x${tag.toString(16)})`,
        ReplyCode.SYNTAX_ERROR,
      );
  }
}

/** Encodes primitives into a growing buffer. */
export class Writer {
  buf: Buffer;
  pos = 0;
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  octet(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v & 0xff;
  }

  short(v: number): void {
    this.room(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }

  long(v: number): void {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }

  longlong(v: number | bigint): void {
    this.room(8);
    this.buf.writeBigUInt64BE(BigInt(v), this.pos);
    this.pos += 8;
  }

  /** A shortstr; longer than 255 octets is an error (callers truncate texts first, see `truncateShortstr`). */
  shortstr(s: string): void {
    const n = Buffer.byteLength(s);
    if (n > 255) throw new CodecError(`shortstr of ${n} octets exceeds 255`);
    this.octet(n);
    this.room(n);
    this.buf.write(s, this.pos, "utf8");
    this.pos += n;
  }

  longstr(v: string | Buffer): void {
    const b = typeof v === "string" ? Buffer.from(v) : v;
    this.long(b.length);
    this.bytes(b);
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }

  table(t: FieldTable): void {
    const lenAt = this.pos;
    this.long(0);
    for (const [k, v] of Object.entries(t)) {
      if (v === undefined) continue;
      this.shortstr(k);
      this.value(v);
    }
    this.buf.writeUInt32BE(this.pos - lenAt - 4, lenAt);
  }

  value(v: FieldValue): void {
    if (v === null) {
      this.octet(0x56);
      return;
    }
    switch (typeof v) {
      case "boolean":
        this.octet(0x74);
        this.octet(v ? 1 : 0);
        return;
      case "string":
        this.octet(0x53);
        this.longstr(v);
        return;
      case "bigint":
        this.octet(0x6c);
        this.room(8);
        this.buf.writeBigInt64BE(v, this.pos);
        this.pos += 8;
        return;
      case "number":
        if (Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) {
          this.octet(0x49);
          this.room(4);
          this.buf.writeInt32BE(v, this.pos);
          this.pos += 4;
        } else if (Number.isSafeInteger(v)) {
          this.value(BigInt(v));
        } else {
          this.octet(0x64);
          this.room(8);
          this.buf.writeDoubleBE(v, this.pos);
          this.pos += 8;
        }
        return;
    }
    if (Buffer.isBuffer(v)) {
      this.octet(0x78);
      this.longstr(v);
      return;
    }
    if (Array.isArray(v)) {
      this.octet(0x41);
      const lenAt = this.pos;
      this.long(0);
      for (const x of v) this.value(x);
      this.buf.writeUInt32BE(this.pos - lenAt - 4, lenAt);
      return;
    }
    if ((v as Decimal).type === "decimal" && typeof (v as Decimal).scale === "number") {
      const d = v as Decimal;
      this.octet(0x44);
      this.octet(d.scale);
      this.room(4);
      this.buf.writeInt32BE(d.value, this.pos);
      this.pos += 4;
      return;
    }
    if ((v as Timestamp).type === "timestamp" && typeof (v as Timestamp).value === "number") {
      this.octet(0x54);
      this.longlong((v as Timestamp).value);
      return;
    }
    this.octet(0x46);
    this.table(v as FieldTable);
  }

  /** The bytes written so far (a view). */
  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** Cut a text to at most 255 UTF-8 octets without splitting a character. */
export function truncateShortstr(s: string, max = 255): string {
  if (Buffer.byteLength(s) <= max) return s;
  const b = Buffer.from(s);
  let n = max - 3;
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--;
  return `${b.subarray(0, n).toString("utf8")}...`;
}
