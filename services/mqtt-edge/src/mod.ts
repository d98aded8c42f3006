/** @portcullis/mqtt-edge — the MQTT edge on aedes (SPEC §4.1, §7). */

export type { MqttEdge, MqttEdgeHealth, MqttEdgeOptions, RevocationRecord, SessionInfo } from "./edge.ts";
export { startMqttEdge } from "./edge.ts";
export type { ConnectionInfo, Transport } from "./listeners.ts";
export type { ConnectResult, Result, Stage } from "./metrics.ts";
export type { ClientIdParts, Parsed, SignatureUsername } from "./signature.ts";
export {
  CLIENT_ID_SEPARATOR,
  MAX_CLIENT_ID_LENGTH,
  mqttPassword,
  mqttUsername,
  parseClientId,
  parseSignatureUsername,
} from "./signature.ts";
export type { AuthThrottleOptions } from "./throttle.ts";
export { AuthThrottle } from "./throttle.ts";
