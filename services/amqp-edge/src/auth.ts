/**
 * Client authentication (SPEC §4.2, ApsaraMQ for AMQP compatible):
 *
 *   username = Base64("0:<instanceId>:<AccessKeyId>")
 *   password = Base64(UPPER_HEX(HMAC-SHA1(key = <timestampMillis>, data = <AccessKeySecret>)) + ":" + <timestampMillis>)
 *
 * carried by SASL PLAIN (RFC 4616: `[authzid] NUL authcid NUL passwd`) or
 * AMQPLAIN (a field table without its length prefix holding LOGIN and
 * PASSWORD). The timestamp must be within a configurable clock skew of now;
 * the signature is compared in constant time.
 */
import { createHmac } from "node:crypto";
import { safeEqual } from "@portcullis/events";
import { CodecError, type FieldTable, tableEntries } from "./codec/fields.ts";

/** The username of an AccessKey for an instance: `Base64("0:<instanceId>:<AccessKeyId>")`. */
export function amqpUsername(instanceId: string, accessKeyId: string): string {
  return Buffer.from(`0:${instanceId}:${accessKeyId}`, "utf8").toString("base64");
}

/** The signature part of a password: upper-case hex HMAC-SHA1 keyed by the timestamp over the secret. */
export function amqpSignature(secret: string, timestampMs: number): string {
  return createHmac("sha1", String(timestampMs)).update(secret, "utf8").digest("hex").toUpperCase();
}

/** The password for an AccessKey secret at `timestampMs` (default now). */
export function amqpPassword(secret: string, timestampMs: number = Date.now()): string {
  return Buffer.from(`${amqpSignature(secret, timestampMs)}:${timestampMs}`, "utf8").toString("base64");
}

/** Credentials as carried by a SASL mechanism. */
export interface SaslCredentials {
  mechanism: "PLAIN" | "AMQPLAIN";
  username: string;
  password: string;
}

/** Why a login failed; `detail` is for logs only (never sent to the client). */
export class AuthError extends Error {
  override name = "AuthError";
  constructor(
    message: string,
    readonly detail: string = message,
  ) {
    super(message);
  }
}

/** The mechanisms offered in connection.start, in order of preference. */
export const SASL_MECHANISMS = ["PLAIN", "AMQPLAIN"] as const;

/** Decode the `response` of connection.start-ok for `mechanism`; throws AuthError. */
export function parseSaslResponse(mechanism: string, response: Buffer): SaslCredentials {
  if (mechanism === "PLAIN") {
    // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
    const parts = response.toString("utf8").split("\u0000");
    if (parts.length !== 3)
      throw new AuthError("malformed PLAIN response (expected `[authzid] NUL user NUL pass`)");
    return { mechanism, username: parts[1]!, password: parts[2]! };
  }
  if (mechanism === "AMQPLAIN") {
    let t: FieldTable;
    try {
      t = tableEntries(response, 0, response.length);
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      // Some clients include the table's length prefix.
      try {
        t = response.length >= 4 ? tableEntries(response, 4, response.length) : {};
      } catch {
        throw new AuthError(`malformed AMQPLAIN response: ${e.message}`);
      }
    }
    const login = t.LOGIN;
    const password = t.PASSWORD;
    if (typeof login !== "string" || typeof password !== "string") {
      throw new AuthError("malformed AMQPLAIN response (expected string LOGIN and PASSWORD)");
    }
    return { mechanism, username: login, password };
  }
  throw new AuthError(`unsupported mechanism \`${mechanism}\``);
}

/** The parts of a username. */
export interface ParsedUsername {
  instanceId: string;
  accessKeyId: string;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

function b64(text: string, what: string): string {
  if (!B64.test(text)) throw new AuthError(`${what} is not Base64`);
  return Buffer.from(text, "base64").toString("utf8");
}

/** Decode a username `Base64("0:<instanceId>:<AccessKeyId>")`; throws AuthError. */
export function parseUsername(username: string): ParsedUsername {
  const plain = b64(username, "username");
  const parts = plain.split(":");
  if (parts.length !== 3 || parts[0] !== "0") {
    throw new AuthError("username must be Base64(`0:<instanceId>:<AccessKeyId>`)");
  }
  const [, instanceId, accessKeyId] = parts as [string, string, string];
  if (instanceId === "" || accessKeyId === "") {
    throw new AuthError("username must be Base64(`0:<instanceId>:<AccessKeyId>`)");
  }
  return { instanceId, accessKeyId };
}

/** The parts of a password. */
export interface ParsedPassword {
  signature: string;
  timestampMs: number;
}

/** Decode a password `Base64(<HEX>:<timestampMillis>)`; throws AuthError. */
export function parsePassword(password: string): ParsedPassword {
  const plain = b64(password, "password");
  const colon = plain.lastIndexOf(":");
  const ts = plain.slice(colon + 1);
  if (colon <= 0 || !/^\d{1,16}$/.test(ts)) {
    throw new AuthError("password must be Base64(`<signature>:<timestampMillis>`)");
  }
  return { signature: plain.slice(0, colon).toUpperCase(), timestampMs: Number(ts) };
}

/**
 * Check a password against the AccessKey secret at time `nowMs`. Throws
 * AuthError when the timestamp is outside `maxClockSkewMs` or the signature
 * does not match (compared in constant time).
 */
export function verifyPassword(
  secret: string,
  password: string,
  nowMs: number,
  maxClockSkewMs: number,
): void {
  const p = parsePassword(password);
  const skew = Math.abs(nowMs - p.timestampMs);
  if (skew > maxClockSkewMs) {
    throw new AuthError(
      `signature timestamp is ${skew} ms away from the gateway's clock (at most ${maxClockSkewMs} ms allowed)`,
    );
  }
  if (!safeEqual(p.signature, amqpSignature(secret, p.timestampMs))) {
    throw new AuthError("invalid credentials", "signature mismatch");
  }
}
