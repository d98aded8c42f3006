import { describe, expect, test } from "vitest";
import {
  mqttPassword,
  mqttUsername,
  parseClientId,
  parseSignatureUsername,
  passwordText,
} from "./signature.ts";

describe("signature credentials (SPEC §4.1)", () => {
  test("password is Base64(HMAC-SHA1(secret, clientId)) — RFC 2202-style vector", () => {
    // HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog") = de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9
    expect(mqttPassword("key", "The quick brown fox jumps over the lazy dog")).toBe(
      Buffer.from("de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9", "hex").toString("base64"),
    );
  });

  test("username round-trips", () => {
    const u = mqttUsername("LTAI123", "mqtt-local");
    expect(u).toBe("Signature|LTAI123|mqtt-local");
    expect(parseSignatureUsername(u)).toEqual({
      ok: true,
      value: { accessKeyId: "LTAI123", instanceId: "mqtt-local" },
    });
  });

  test.each([
    [undefined, "no username"],
    ["", "no username"],
    ["Signature|only-two", "must be"],
    ["Signature|a|b|c", "must be"],
    ["Token|LTAI|mqtt-local", "not supported"],
    ["Signature||mqtt-local", "malformed AccessKeyId"],
    ["Signature|LTAI|", "malformed InstanceId"],
    ["Signature|LT\u0001AI|mqtt-local", "malformed AccessKeyId"],
    [`Signature|${"x".repeat(600)}|i`, "longer than 512"],
  ])("username %j is refused (%s)", (u, reason) => {
    const r = parseSignatureUsername(u);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  test("client id <GroupID>@@@<DeviceID>", () => {
    expect(parseClientId("GID_a@@@dev-1")).toEqual({
      ok: true,
      value: { groupId: "GID_a", deviceId: "dev-1" },
    });
    // The first separator splits: a device id may itself contain `@@@`.
    expect(parseClientId("GID_a@@@d@@@e")).toEqual({
      ok: true,
      value: { groupId: "GID_a", deviceId: "d@@@e" },
    });
    expect(parseClientId(`GID_a@@@${"d".repeat(56)}`).ok).toBe(true); // 64 characters
  });

  test.each([
    [`GID_a@@@${"d".repeat(57)}`, "65 characters long; at most 64"],
    ["GID_a-dev", "must be `<GroupID>@@@<DeviceID>`"],
    ["@@@dev", "empty Group ID"],
    ["GID_a@@@", "empty Device ID"],
    ["GID\u0000@@@x", "control characters"],
  ])("client id %j is refused (%s)", (id, reason) => {
    const r = parseClientId(id);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  test("password bytes", () => {
    expect(passwordText(undefined)).toBeUndefined();
    expect(passwordText(Buffer.alloc(0))).toBeUndefined();
    expect(passwordText(Buffer.from([0xff, 0xfe]))).toBeUndefined();
    expect(passwordText(Buffer.alloc(300, 65))).toBeUndefined();
    expect(passwordText(Buffer.from("abc="))).toBe("abc=");
  });
});
