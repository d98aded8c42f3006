/**
 * The one content property the edge reads (never re-encodes): the `headers`
 * table of a basic content header, for RabbitMQ's sender-selected
 * distribution — the `CC` and `BCC` headers name extra routing keys a message
 * is routed with (RabbitMQ docs, "Sender-selected Distribution").
 *
 * Content header payload (AMQP 0-9-1 §4.2.6.1): class-id (short), weight
 * (short), body size (longlong), property flags (short words; bit 0 set = one
 * more word follows), then the present properties in flag order. basic's first
 * three are content-type (shortstr, bit 15), content-encoding (shortstr, bit
 * 14) and headers (table, bit 13).
 */
import { CodecError, type FieldTable, Reader } from "./fields.ts";

const CONTENT_TYPE = 1 << 15;
const CONTENT_ENCODING = 1 << 14;
const HEADERS = 1 << 13;

/** The headers table of the content header frame `buf[start, end)`, or undefined when it has none. Throws CodecError. */
export function contentHeaders(buf: Buffer, start: number, end: number): FieldTable | undefined {
  const r = new Reader(buf, start + 7 + 12, end - 1);
  const flags = r.short();
  let more = flags;
  while (more & 1) more = r.short(); // further flag words (unused by class basic)
  if ((flags & HEADERS) === 0) return undefined;
  if (flags & CONTENT_TYPE) r.shortstr();
  if (flags & CONTENT_ENCODING) r.shortstr();
  return r.table();
}

/** The routing keys of the `CC` and `BCC` headers (empty when there are none). */
export function senderSelectedKeys(headers: FieldTable | undefined): string[] {
  if (!headers) return [];
  const out: string[] = [];
  for (const name of ["CC", "BCC"]) {
    const v = headers[name];
    if (v === undefined || v === null) continue;
    for (const k of Array.isArray(v) ? v : [v]) {
      if (typeof k === "string") out.push(k);
      else if (Buffer.isBuffer(k)) out.push(k.toString("utf8"));
      else throw new CodecError(`${name} header holds a non-string routing key`);
    }
  }
  return out;
}
