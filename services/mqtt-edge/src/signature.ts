/**
 * ApsaraMQ for MQTT signature authentication (SPEC §4.1):
 *
 *   username = `Signature|<AccessKeyId>|<InstanceId>`
 *   password = Base64(HMAC-SHA1(key = AccessKeySecret, data = ClientId))
 *   clientId = `<GroupID>@@@<DeviceID>`, at most 64 characters
 *
 * Pure functions: parsing returns a reason instead of throwing, so the edge can
 * answer with the right CONNACK code and log what was wrong.
 */
import { createHmac } from "node:crypto";

/** Separator of the Group ID and the Device ID in a client id. */
export const CLIENT_ID_SEPARATOR = "@@@";
/** Longest client id accepted (ApsaraMQ limit). */
export const MAX_CLIENT_ID_LENGTH = 64;

/** The MQTT username for signature authentication: `Signature|<AccessKeyId>|<InstanceId>`. */
export function mqttUsername(accessKeyId: string, instanceId: string): string {
  return `Signature|${accessKeyId}|${instanceId}`;
}

/** The MQTT password for signature authentication: `Base64(HMAC-SHA1(secret, clientId))`. */
export function mqttPassword(secret: string, clientId: string): string {
  return createHmac("sha1", secret).update(clientId, "utf8").digest("base64");
}

/** A parsed signature username. */
export interface SignatureUsername {
  accessKeyId: string;
  instanceId: string;
}

/** A parse result: the value, or a lowercase reason naming what is wrong. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const hasControl = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
};

/** Parse `Signature|<AccessKeyId>|<InstanceId>`. */
export function parseSignatureUsername(username: string | undefined): Parsed<SignatureUsername> {
  if (username === undefined || username === "") return { ok: false, reason: "no username" };
  if (username.length > 512) return { ok: false, reason: "username longer than 512 characters" };
  const parts = username.split("|");
  if (parts.length !== 3) {
    return { ok: false, reason: "username must be `Signature|<AccessKeyId>|<InstanceId>`" };
  }
  const [mode, accessKeyId, instanceId] = parts as [string, string, string];
  if (mode !== "Signature") {
    return {
      ok: false,
      reason: `authentication mode \`${mode.slice(0, 32)}\` is not supported (only \`Signature\`)`,
    };
  }
  if (accessKeyId === "" || hasControl(accessKeyId)) return { ok: false, reason: "malformed AccessKeyId" };
  if (instanceId === "" || hasControl(instanceId)) return { ok: false, reason: "malformed InstanceId" };
  return { ok: true, value: { accessKeyId, instanceId } };
}

/** A parsed client id `<GroupID>@@@<DeviceID>`. */
export interface ClientIdParts {
  groupId: string;
  deviceId: string;
}

/** Parse and check `<GroupID>@@@<DeviceID>` (≤ 64 characters, both parts non-empty). */
export function parseClientId(clientId: string): Parsed<ClientIdParts> {
  if (clientId.length > MAX_CLIENT_ID_LENGTH) {
    return {
      ok: false,
      reason: `client id is ${clientId.length} characters long; at most ${MAX_CLIENT_ID_LENGTH} are allowed`,
    };
  }
  if (hasControl(clientId)) return { ok: false, reason: "client id contains control characters" };
  const at = clientId.indexOf(CLIENT_ID_SEPARATOR);
  if (at < 0) return { ok: false, reason: "client id must be `<GroupID>@@@<DeviceID>`" };
  const groupId = clientId.slice(0, at);
  const deviceId = clientId.slice(at + CLIENT_ID_SEPARATOR.length);
  if (groupId === "") return { ok: false, reason: "client id has an empty Group ID" };
  if (deviceId === "") return { ok: false, reason: "client id has an empty Device ID" };
  return { ok: true, value: { groupId, deviceId } };
}

/** Decode a CONNECT password to the signature text; undefined when absent or not valid UTF-8 text. */
export function passwordText(password: Buffer | undefined): string | undefined {
  if (password === undefined || password.length === 0 || password.length > 256) return undefined;
  const s = password.toString("utf8");
  return s.includes("\ufffd") ? undefined : s;
}
