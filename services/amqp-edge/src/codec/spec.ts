/**
 * The AMQP 0-9-1 method table: every class and method of the 0-9-1 spec
 * (amqp0-9-1.xml, with RabbitMQ's extensions exchange.bind/unbind,
 * basic.nack, confirm.*, connection.blocked/unblocked/update-secret), written
 * out from the spec as reviewed source. Field names are the spec's, in
 * camelCase; `reserved-N` fields keep their place (they are on the wire).
 *
 * Domains map to wire types as in the spec's `domain` elements: bit, octet,
 * short (uint16), long (uint32), longlong (uint64), shortstr (≤ 255 octets),
 * longstr (uint32-prefixed octets), timestamp (uint64), table (field table).
 */

/** A wire type of a method field. */
export type FieldType = "bit" | "octet" | "short" | "long" | "longlong" | "shortstr" | "longstr" | "table";

/** One method of the spec. */
export interface MethodSpec {
  readonly classId: number;
  readonly methodId: number;
  /** `class.method`, e.g. `basic.publish`. */
  readonly name: string;
  /** Fields in wire order: [camelCase name, type]. */
  readonly fields: readonly (readonly [string, FieldType])[];
  /** The method is followed by a content header and body frames (AMQP 0-9-1 §4.2.6). */
  readonly content?: boolean;
  /** Which peer may send it: `c` client, `s` server, `cs` both. */
  readonly sender: "c" | "s" | "cs";
}

type F = readonly [string, FieldType];
const bit = (n: string): F => [n, "bit"];
const octet = (n: string): F => [n, "octet"];
const short = (n: string): F => [n, "short"];
const long = (n: string): F => [n, "long"];
const longlong = (n: string): F => [n, "longlong"];
const shortstr = (n: string): F => [n, "shortstr"];
const longstr = (n: string): F => [n, "longstr"];
const table = (n: string): F => [n, "table"];

const m = (
  classId: number,
  methodId: number,
  name: string,
  sender: MethodSpec["sender"],
  fields: F[],
  content = false,
): MethodSpec => ({ classId, methodId, name, sender, fields, ...(content ? { content } : {}) });

/** Class ids (AMQP 0-9-1 §1). */
export const CLASS = {
  connection: 10,
  channel: 20,
  access: 30,
  exchange: 40,
  queue: 50,
  basic: 60,
  confirm: 85,
  tx: 90,
} as const;

/** Every method, in spec order. */
export const METHOD_SPECS: readonly MethodSpec[] = [
  // connection (class 10)
  m(10, 10, "connection.start", "s", [
    octet("versionMajor"),
    octet("versionMinor"),
    table("serverProperties"),
    longstr("mechanisms"),
    longstr("locales"),
  ]),
  m(10, 11, "connection.start-ok", "c", [
    table("clientProperties"),
    shortstr("mechanism"),
    longstr("response"),
    shortstr("locale"),
  ]),
  m(10, 20, "connection.secure", "s", [longstr("challenge")]),
  m(10, 21, "connection.secure-ok", "c", [longstr("response")]),
  m(10, 30, "connection.tune", "s", [short("channelMax"), long("frameMax"), short("heartbeat")]),
  m(10, 31, "connection.tune-ok", "c", [short("channelMax"), long("frameMax"), short("heartbeat")]),
  m(10, 40, "connection.open", "c", [shortstr("virtualHost"), shortstr("reserved1"), bit("reserved2")]),
  m(10, 41, "connection.open-ok", "s", [shortstr("reserved1")]),
  m(10, 50, "connection.close", "cs", [
    short("replyCode"),
    shortstr("replyText"),
    short("classId"),
    short("methodId"),
  ]),
  m(10, 51, "connection.close-ok", "cs", []),
  m(10, 60, "connection.blocked", "s", [shortstr("reason")]),
  m(10, 61, "connection.unblocked", "s", []),
  m(10, 70, "connection.update-secret", "c", [longstr("newSecret"), shortstr("reason")]),
  m(10, 71, "connection.update-secret-ok", "s", []),
  // channel (class 20)
  m(20, 10, "channel.open", "c", [shortstr("reserved1")]),
  m(20, 11, "channel.open-ok", "s", [longstr("reserved1")]),
  m(20, 20, "channel.flow", "cs", [bit("active")]),
  m(20, 21, "channel.flow-ok", "cs", [bit("active")]),
  m(20, 40, "channel.close", "cs", [
    short("replyCode"),
    shortstr("replyText"),
    short("classId"),
    short("methodId"),
  ]),
  m(20, 41, "channel.close-ok", "cs", []),
  // access (class 30; deprecated in 0-9-1 but still answered by RabbitMQ)
  m(30, 10, "access.request", "c", [
    shortstr("realm"),
    bit("exclusive"),
    bit("passive"),
    bit("active"),
    bit("write"),
    bit("read"),
  ]),
  m(30, 11, "access.request-ok", "s", [short("reserved1")]),
  // exchange (class 40)
  m(40, 10, "exchange.declare", "c", [
    short("reserved1"),
    shortstr("exchange"),
    shortstr("type"),
    bit("passive"),
    bit("durable"),
    bit("autoDelete"),
    bit("internal"),
    bit("noWait"),
    table("arguments"),
  ]),
  m(40, 11, "exchange.declare-ok", "s", []),
  m(40, 20, "exchange.delete", "c", [
    short("reserved1"),
    shortstr("exchange"),
    bit("ifUnused"),
    bit("noWait"),
  ]),
  m(40, 21, "exchange.delete-ok", "s", []),
  m(40, 30, "exchange.bind", "c", [
    short("reserved1"),
    shortstr("destination"),
    shortstr("source"),
    shortstr("routingKey"),
    bit("noWait"),
    table("arguments"),
  ]),
  m(40, 31, "exchange.bind-ok", "s", []),
  m(40, 40, "exchange.unbind", "c", [
    short("reserved1"),
    shortstr("destination"),
    shortstr("source"),
    shortstr("routingKey"),
    bit("noWait"),
    table("arguments"),
  ]),
  m(40, 51, "exchange.unbind-ok", "s", []),
  // queue (class 50)
  m(50, 10, "queue.declare", "c", [
    short("reserved1"),
    shortstr("queue"),
    bit("passive"),
    bit("durable"),
    bit("exclusive"),
    bit("autoDelete"),
    bit("noWait"),
    table("arguments"),
  ]),
  m(50, 11, "queue.declare-ok", "s", [shortstr("queue"), long("messageCount"), long("consumerCount")]),
  m(50, 20, "queue.bind", "c", [
    short("reserved1"),
    shortstr("queue"),
    shortstr("exchange"),
    shortstr("routingKey"),
    bit("noWait"),
    table("arguments"),
  ]),
  m(50, 21, "queue.bind-ok", "s", []),
  m(50, 30, "queue.purge", "c", [short("reserved1"), shortstr("queue"), bit("noWait")]),
  m(50, 31, "queue.purge-ok", "s", [long("messageCount")]),
  m(50, 40, "queue.delete", "c", [
    short("reserved1"),
    shortstr("queue"),
    bit("ifUnused"),
    bit("ifEmpty"),
    bit("noWait"),
  ]),
  m(50, 41, "queue.delete-ok", "s", [long("messageCount")]),
  m(50, 50, "queue.unbind", "c", [
    short("reserved1"),
    shortstr("queue"),
    shortstr("exchange"),
    shortstr("routingKey"),
    table("arguments"),
  ]),
  m(50, 51, "queue.unbind-ok", "s", []),
  // basic (class 60)
  m(60, 10, "basic.qos", "c", [long("prefetchSize"), short("prefetchCount"), bit("global")]),
  m(60, 11, "basic.qos-ok", "s", []),
  m(60, 20, "basic.consume", "c", [
    short("reserved1"),
    shortstr("queue"),
    shortstr("consumerTag"),
    bit("noLocal"),
    bit("noAck"),
    bit("exclusive"),
    bit("noWait"),
    table("arguments"),
  ]),
  m(60, 21, "basic.consume-ok", "s", [shortstr("consumerTag")]),
  m(60, 30, "basic.cancel", "cs", [shortstr("consumerTag"), bit("noWait")]),
  // A client never sends cancel-ok: RabbitMQ answers it with 503 (its basic.cancel to clients is no-wait).
  m(60, 31, "basic.cancel-ok", "s", [shortstr("consumerTag")]),
  m(
    60,
    40,
    "basic.publish",
    "c",
    [short("reserved1"), shortstr("exchange"), shortstr("routingKey"), bit("mandatory"), bit("immediate")],
    true,
  ),
  m(
    60,
    50,
    "basic.return",
    "s",
    [short("replyCode"), shortstr("replyText"), shortstr("exchange"), shortstr("routingKey")],
    true,
  ),
  m(
    60,
    60,
    "basic.deliver",
    "s",
    [
      shortstr("consumerTag"),
      longlong("deliveryTag"),
      bit("redelivered"),
      shortstr("exchange"),
      shortstr("routingKey"),
    ],
    true,
  ),
  m(60, 70, "basic.get", "c", [short("reserved1"), shortstr("queue"), bit("noAck")]),
  m(
    60,
    71,
    "basic.get-ok",
    "s",
    [
      longlong("deliveryTag"),
      bit("redelivered"),
      shortstr("exchange"),
      shortstr("routingKey"),
      long("messageCount"),
    ],
    true,
  ),
  m(60, 72, "basic.get-empty", "s", [shortstr("reserved1")]),
  m(60, 80, "basic.ack", "cs", [longlong("deliveryTag"), bit("multiple")]),
  m(60, 90, "basic.reject", "c", [longlong("deliveryTag"), bit("requeue")]),
  m(60, 100, "basic.recover-async", "c", [bit("requeue")]),
  m(60, 110, "basic.recover", "c", [bit("requeue")]),
  m(60, 111, "basic.recover-ok", "s", []),
  m(60, 120, "basic.nack", "cs", [longlong("deliveryTag"), bit("multiple"), bit("requeue")]),
  // confirm (class 85, RabbitMQ extension)
  m(85, 10, "confirm.select", "c", [bit("noWait")]),
  m(85, 11, "confirm.select-ok", "s", []),
  // tx (class 90)
  m(90, 10, "tx.select", "c", []),
  m(90, 11, "tx.select-ok", "s", []),
  m(90, 20, "tx.commit", "c", []),
  m(90, 21, "tx.commit-ok", "s", []),
  m(90, 30, "tx.rollback", "c", []),
  m(90, 31, "tx.rollback-ok", "s", []),
];

/** `classId << 16 | methodId` → spec. */
export const METHODS_BY_ID: ReadonlyMap<number, MethodSpec> = new Map(
  METHOD_SPECS.map((s) => [(s.classId << 16) | s.methodId, s]),
);

/** `class.method` → spec. */
export const METHODS_BY_NAME: ReadonlyMap<string, MethodSpec> = new Map(METHOD_SPECS.map((s) => [s.name, s]));

/** The spec of a method by name; throws for a name not in the table (a programming error). */
export function methodSpec(name: string): MethodSpec {
  const s = METHODS_BY_NAME.get(name);
  if (!s) throw new Error(`no AMQP 0-9-1 method \`${name}\``);
  return s;
}

/** The key of a method in METHODS_BY_ID (`classId << 16 | methodId`); throws for an unknown name. */
export function methodKey(name: string): number {
  const s = methodSpec(name);
  return (s.classId << 16) | s.methodId;
}
