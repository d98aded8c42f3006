/**
 * AMQP 0-9-1 wire constants (AMQP 0-9-1 §4.2, §4.2.3 and the `constant`
 * elements of the spec's XML): frame types, the frame-end octet, reply codes.
 */

/** The protocol header a 0-9-1 client sends first (AMQP 0-9-1 §4.2.2). */
export const PROTOCOL_HEADER: Buffer = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]);

/** Frame types (AMQP 0-9-1 §4.2.3). */
export const FRAME_METHOD = 1;
/** Content header frame. */
export const FRAME_HEADER = 2;
/** Content body frame. */
export const FRAME_BODY = 3;
/** Heartbeat frame (always channel 0, empty payload; AMQP 0-9-1 §4.2.7). */
export const FRAME_HEARTBEAT = 8;
/** Every frame ends with this octet (AMQP 0-9-1 §4.2.3). */
export const FRAME_END = 0xce;
/** Frame header size: type (1), channel (2), payload size (4). */
export const FRAME_HEADER_SIZE = 7;
/** Header + frame-end: a frame of payload size n takes n + 8 octets. */
export const FRAME_OVERHEAD = 8;
/** Smallest frame-max a peer may negotiate; also the limit before tuning (AMQP 0-9-1 §4.2.3). */
export const FRAME_MIN_SIZE = 4096;

/** Reply codes (the `constant` elements of the AMQP 0-9-1 spec). */
export const ReplyCode = {
  REPLY_SUCCESS: 200,
  CONTENT_TOO_LARGE: 311,
  NO_ROUTE: 312,
  NO_CONSUMERS: 313,
  CONNECTION_FORCED: 320,
  INVALID_PATH: 402,
  ACCESS_REFUSED: 403,
  NOT_FOUND: 404,
  RESOURCE_LOCKED: 405,
  PRECONDITION_FAILED: 406,
  FRAME_ERROR: 501,
  SYNTAX_ERROR: 502,
  COMMAND_INVALID: 503,
  CHANNEL_ERROR: 504,
  UNEXPECTED_FRAME: 505,
  RESOURCE_ERROR: 506,
  NOT_ALLOWED: 530,
  NOT_IMPLEMENTED: 540,
  INTERNAL_ERROR: 541,
} as const;

/** The name RabbitMQ prefixes reply texts with (`ACCESS_REFUSED - …`). */
export function replyCodeName(code: number): string {
  for (const [k, v] of Object.entries(ReplyCode)) if (v === code) return k;
  return String(code);
}
