/**
 * @portcullis/amqp-edge — an AMQP 0-9-1 gateway in front of RabbitMQ that
 * authenticates clients with ApsaraMQ-style AccessKey signatures and checks
 * every method against the RAM policy projection (SPEC §4.2, §7).
 */

export type { AuthError, ParsedPassword, ParsedUsername, SaslCredentials } from "./auth.ts";
export {
  amqpPassword,
  amqpSignature,
  amqpUsername,
  parsePassword,
  parseSaslResponse,
  parseUsername,
  verifyPassword,
} from "./auth.ts";
export { PROTOCOL_HEADER, ReplyCode } from "./codec/constants.ts";
export type { ConnectionInfo, UpstreamTarget } from "./connection.ts";
export type { AmqpEdge, AmqpEdgeHealth, AmqpEdgeOptions } from "./edge.ts";
export { parseUpstreamUrl, probeUpstream, startAmqpEdge, upstreamUrlList } from "./edge.ts";
export type { AmqpOp, Check } from "./rules.ts";
export { checksFor } from "./rules.ts";
