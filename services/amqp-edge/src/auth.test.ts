import { describe, expect, it } from "vitest";
import {
  AuthError,
  amqpPassword,
  amqpUsername,
  parsePassword,
  parseSaslResponse,
  parseUsername,
  verifyPassword,
} from "./auth.ts";
import { Writer } from "./codec/fields.ts";

// Computed independently (Python hmac/base64) for the ApsaraMQ scheme of SPEC §4.2.
const TS = 1_700_000_000_000;
const SECRET = "SECRETsecret123";
const PASSWORD = "RDdBNzc0NUZCOTEwMTU1RDRFQTAyNjJCNDgwMEZCMkNGQTlBNzlFNzoxNzAwMDAwMDAwMDAw";

describe("ApsaraMQ AMQP credentials", () => {
  it("builds username and password as ApsaraMQ does", () => {
    expect(amqpUsername("amqp-local", "LTAIexample")).toBe("MDphbXFwLWxvY2FsOkxUQUlleGFtcGxl");
    expect(amqpPassword(SECRET, TS)).toBe(PASSWORD);
    expect(parseUsername("MDphbXFwLWxvY2FsOkxUQUlleGFtcGxl")).toEqual({
      instanceId: "amqp-local",
      accessKeyId: "LTAIexample",
    });
    expect(parsePassword(PASSWORD).timestampMs).toBe(TS);
  });

  it("accepts a signature within the clock skew and refuses one outside it", () => {
    expect(() => verifyPassword(SECRET, PASSWORD, TS + 59_000, 60_000)).not.toThrow();
    expect(() => verifyPassword(SECRET, PASSWORD, TS - 59_000, 60_000)).not.toThrow();
    expect(() => verifyPassword(SECRET, PASSWORD, TS + 61_000, 60_000)).toThrow(
      /61000 ms away.*60000 ms allowed/,
    );
  });

  it("refuses a wrong secret without telling why beyond `invalid credentials`", () => {
    try {
      verifyPassword("other", PASSWORD, TS, 60_000);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(AuthError);
      expect((e as AuthError).message).toBe("invalid credentials");
      expect((e as AuthError).detail).toBe("signature mismatch");
    }
  });

  it("refuses malformed usernames and passwords with a message", () => {
    expect(() => parseUsername("not base64!")).toThrow(/not Base64/);
    expect(() => parseUsername(Buffer.from("1:i:k").toString("base64"))).toThrow(
      /0:<instanceId>:<AccessKeyId>/,
    );
    expect(() => parseUsername(Buffer.from("0::k").toString("base64"))).toThrow(AuthError);
    expect(() => parsePassword(Buffer.from("ABC").toString("base64"))).toThrow(
      /<signature>:<timestampMillis>/,
    );
    expect(() => parsePassword(Buffer.from("ABC:12x").toString("base64"))).toThrow(AuthError);
  });

  it("reads SASL PLAIN (with and without authzid) and AMQPLAIN", () => {
    expect(parseSaslResponse("PLAIN", Buffer.from("\u0000u\u0000p"))).toMatchObject({
      username: "u",
      password: "p",
    });
    expect(parseSaslResponse("PLAIN", Buffer.from("z\u0000u\u0000p"))).toMatchObject({
      username: "u",
      password: "p",
    });
    expect(() => parseSaslResponse("PLAIN", Buffer.from("up"))).toThrow(/malformed PLAIN/);
    const w = new Writer();
    w.table({ LOGIN: "u", PASSWORD: "p" });
    const withLength = w.result();
    expect(parseSaslResponse("AMQPLAIN", withLength.subarray(4))).toMatchObject({
      username: "u",
      password: "p",
    });
    expect(parseSaslResponse("AMQPLAIN", withLength)).toMatchObject({ mechanism: "AMQPLAIN", username: "u" });
    expect(() => parseSaslResponse("AMQPLAIN", Buffer.from([1, 2, 3]))).toThrow(/malformed AMQPLAIN/);
    expect(() => parseSaslResponse("EXTERNAL", Buffer.alloc(0))).toThrow(/unsupported mechanism/);
  });
});
