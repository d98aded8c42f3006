/**
 * Client-side credentials for the edges (what a device SDK computes), used by
 * `portcullis signature …` and the demo printout:
 * - MQTT (SPEC §4.1): username `Signature|<AccessKeyId>|<InstanceId>`,
 *   password `Base64(HMAC-SHA1(key=AccessKeySecret, data=ClientId))` — from @portcullis/mqtt-edge.
 * - AMQP (SPEC §4.2): username `Base64("0:<instanceId>:<AccessKeyId>")`, password
 *   `Base64(UPPER_HEX(HMAC-SHA1(key=timestampMillis, data=AccessKeySecret)) + ":" + timestampMillis)`.
 */
import { amqpPassword, amqpUsername } from "@portcullis/amqp-edge";
import { mqttPassword, mqttUsername } from "@portcullis/mqtt-edge";

export { mqttPassword, mqttUsername };

/** The AMQP username of an AccessKey for an instance. */
export function amqpClientUsername(instanceId: string, accessKeyId: string): string {
  return amqpUsername(instanceId, accessKeyId);
}

/** The AMQP password of an AccessKey secret at `timestampMs` (valid within the edge's clock-skew bound). */
export function amqpClientPassword(secret: string, timestampMs: number = Date.now()): string {
  return amqpPassword(secret, timestampMs);
}

/** Quote a value for a POSIX shell. */
export function shq(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'"'"'`)}'`;
}
