/**
 * Method frames (AMQP 0-9-1 §4.2.4): decode a method payload into its spec
 * and arguments, encode a method into a complete frame. Only method frames
 * are ever decoded by the edge; content frames are forwarded as bytes.
 *
 * Bits (AMQP 0-9-1 §4.2.5.2): consecutive bit fields share octets, least
 * significant bit first; any other field ends the run.
 */
import { FRAME_END, FRAME_HEADER_SIZE, FRAME_METHOD, ReplyCode } from "./constants.ts";
import { CodecError, type FieldTable, Reader, Writer } from "./fields.ts";
import { METHODS_BY_ID, type MethodSpec, methodSpec } from "./spec.ts";

/** Decoded method arguments: field name → value. */
export type MethodArgs = Record<string, unknown>;

/** A decoded method. */
export interface DecodedMethod {
  spec: MethodSpec;
  /** `classId << 16 | methodId`. */
  key: number;
  args: MethodArgs;
}

/**
 * Decode the method in `buf[start, end)` (the frame payload). Throws CodecError:
 * 503 COMMAND_INVALID for an unknown class or method, 501 FRAME_ERROR for
 * truncated or trailing arguments (as RabbitMQ: "cannot decode"), 502
 * SYNTAX_ERROR for an illegal field value.
 */
export function decodeMethod(buf: Buffer, start: number, end: number): DecodedMethod {
  if (end - start < 4) throw new CodecError(`method frame payload of ${end - start} octets is too short`);
  const classId = buf.readUInt16BE(start);
  const methodId = buf.readUInt16BE(start + 2);
  const key = (classId << 16) | methodId;
  const spec = METHODS_BY_ID.get(key);
  if (!spec) {
    throw new CodecError(
      `unknown method ${classId}/${methodId} (class ${classId}, method ${methodId})`,
      ReplyCode.COMMAND_INVALID,
    );
  }
  const r = new Reader(buf, start + 4, end);
  const args: MethodArgs = {};
  let bits = 0;
  let bitPos = 8;
  for (const [name, type] of spec.fields) {
    if (type === "bit") {
      if (bitPos === 8) {
        bits = r.octet();
        bitPos = 0;
      }
      args[name] = (bits & (1 << bitPos)) !== 0;
      bitPos++;
      continue;
    }
    bitPos = 8;
    switch (type) {
      case "octet":
        args[name] = r.octet();
        break;
      case "short":
        args[name] = r.short();
        break;
      case "long":
        args[name] = r.long();
        break;
      case "longlong":
        args[name] = r.longlong();
        break;
      case "shortstr":
        args[name] = r.shortstr();
        break;
      case "longstr":
        args[name] = r.longstr();
        break;
      case "table":
        args[name] = r.table();
        break;
    }
  }
  if (r.pos !== end) {
    throw new CodecError(`${spec.name}: ${end - r.pos} unexpected octets after the last argument`);
  }
  return { spec, key, args };
}

/** Encode `name` with `args` (missing fields are zero, empty or false) into a complete method frame. */
export function encodeMethodFrame(channel: number, name: string, args: MethodArgs = {}): Buffer {
  const spec = methodSpec(name);
  const w = new Writer(64);
  w.octet(FRAME_METHOD);
  w.short(channel);
  w.long(0); // size, patched below
  w.short(spec.classId);
  w.short(spec.methodId);
  let bits = 0;
  let bitPos = -1;
  const flushBits = () => {
    if (bitPos >= 0) w.octet(bits);
    bits = 0;
    bitPos = -1;
  };
  for (const [field, type] of spec.fields) {
    const v = args[field];
    if (type === "bit") {
      if (bitPos === 7) flushBits();
      bitPos++;
      if (v) bits |= 1 << bitPos;
      continue;
    }
    flushBits();
    switch (type) {
      case "octet":
        w.octet((v as number | undefined) ?? 0);
        break;
      case "short":
        w.short((v as number | undefined) ?? 0);
        break;
      case "long":
        w.long((v as number | undefined) ?? 0);
        break;
      case "longlong":
        w.longlong((v as number | bigint | undefined) ?? 0);
        break;
      case "shortstr":
        w.shortstr((v as string | undefined) ?? "");
        break;
      case "longstr":
        w.longstr((v as string | Buffer | undefined) ?? "");
        break;
      case "table":
        w.table((v as FieldTable | undefined) ?? {});
        break;
    }
  }
  flushBits();
  w.octet(FRAME_END);
  const out = w.result();
  out.writeUInt32BE(out.length - FRAME_HEADER_SIZE - 1, 3);
  return Buffer.from(out);
}

/** The heartbeat frame (AMQP 0-9-1 §4.2.7). */
export const HEARTBEAT_FRAME: Buffer = Buffer.from([8, 0, 0, 0, 0, 0, 0, FRAME_END]);
