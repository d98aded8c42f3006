/**
 * A tiny MQTT 3.1.1 encoder (OASIS MQTT 3.1.1 §2–§3) for raw-socket clients in
 * tests and benchmarks, where a client library would hide (or tidy up) the
 * bytes: the remaining-length varint, length-prefixed strings, packets and CONNECT.
 */

/** The remaining-length encoding (§2.2.3): 7 bits per byte, high bit = more. */
export function mqttVarint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** A UTF-8 string (or raw bytes) with its 2-byte length (§1.5.3). */
export function mqttString(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
}

/** A packet: the first byte (type and flags), the remaining length, the body. */
export function mqttPacket(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first, ...mqttVarint(body.length)]), body]);
}

/** Options of {@link mqttConnect}; an absent username or password is left out of the packet. */
export interface MqttConnectOptions {
  username?: string | undefined;
  password?: string | Buffer | undefined;
  /** Protocol name (default `MQTT`; anything else to test a refusal). */
  protocol?: string;
  /** Keep-alive in seconds (default 0: none). */
  keepAliveS?: number;
}

/** A CONNECT with a clean session, protocol level 4 (§3.1). */
export function mqttConnect(clientId: string, o: MqttConnectOptions = {}): Buffer {
  let flags = 0x02; // clean session
  if (o.username !== undefined) flags |= 0x80;
  if (o.password !== undefined) flags |= 0x40;
  const keepAlive = o.keepAliveS ?? 0;
  return mqttPacket(
    0x10,
    Buffer.concat([
      mqttString(o.protocol ?? "MQTT"),
      Buffer.from([4, flags, keepAlive >> 8, keepAlive & 255]),
      mqttString(clientId),
      ...(o.username !== undefined ? [mqttString(o.username)] : []),
      ...(o.password !== undefined ? [mqttString(o.password)] : []),
    ]),
  );
}
