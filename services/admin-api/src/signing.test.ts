/** Request signing (signing.ts) and its verification (auth.ts). */
import type { Credential } from "@portcullis/feed";
import { describe, expect, it } from "vitest";
import { authenticate, type RawRequest } from "./auth.ts";
import {
  canonicalQuery,
  canonicalRequest,
  NonceCache,
  parseAuthorization,
  rfc3986,
  sha256Hex,
  signRequest,
} from "./signing.ts";

const cred: Credential = {
  accessKeyId: "LTAIkey",
  principal: { accountId: "1234567890123456", kind: "root" },
  secret: "top-secret",
  usable: true,
};
const resolve = (id: string) => (id === cred.accessKeyId ? cred : undefined);
const SKEW = 300_000;
const NOW = Date.parse("2025-05-01T12:00:00.000Z");

function signed(
  o: { method?: string; url?: string; body?: string; date?: Date; nonce?: string; secret?: string } = {},
): RawRequest {
  const method = o.method ?? "POST";
  const url = o.url ?? "/v1/users?waitEnforced=true";
  const body = o.body ?? '{"userName":"alice"}';
  const headers = signRequest({
    method,
    url,
    host: "127.0.0.1:8181",
    body,
    accessKeyId: cred.accessKeyId,
    accessKeySecret: o.secret ?? cred.secret,
    date: o.date ?? new Date(NOW),
    ...(o.nonce ? { nonce: o.nonce } : {}),
  });
  return { method, url, headers, body: Buffer.from(body) };
}
const verify = (r: RawRequest, nonces = new NonceCache(), now = NOW) =>
  authenticate(r, resolve, nonces, { maxClockSkewMs: SKEW, now });
const codeOf = (r: Awaited<ReturnType<typeof verify>>) => (r.ok ? "ok" : r.code);

describe("canonical form", () => {
  it("sorts and re-encodes the query per RFC 3986", () => {
    expect(canonicalQuery("b=2&a=x%20y&a=1&c")).toBe("a=1&a=x%20y&b=2&c=");
    expect(canonicalQuery("k=a+b%2Fc")).toBe("k=a%2Bb%2Fc");
    expect(canonicalQuery("")).toBe("");
    expect(rfc3986("a!*'()~")).toBe("a%21%2A%27%28%29~");
  });
  it("lists method, path, query, signed headers and the body hash on separate lines", () => {
    const c = canonicalRequest({
      method: "get",
      url: "/v1/users?b=1&a=2",
      headers: { "X-PC-Date": "  2025-05-01T12:00:00Z ", "x-pc-content-sha256": sha256Hex("") },
      signedHeaders: ["x-pc-date", "x-pc-content-sha256"],
    });
    expect(c.split("\n")).toEqual([
      "GET",
      "/v1/users",
      "a=2&b=1",
      `x-pc-content-sha256:${sha256Hex("")}`,
      "x-pc-date:2025-05-01T12:00:00Z",
      "",
      "x-pc-content-sha256;x-pc-date",
      sha256Hex(""),
    ]);
  });
  it("parses the Authorization header and insists on the required signed headers", () => {
    const h = signed().headers.authorization as string;
    const p = parseAuthorization(h);
    expect(p).toMatchObject({ accessKeyId: "LTAIkey" });
    expect(typeof p !== "string" && p.signedHeaders).toEqual([
      "host",
      "x-pc-content-sha256",
      "x-pc-date",
      "x-pc-nonce",
    ]);
    expect(parseAuthorization("AWS4 Credential=x")).toMatch(/unsupported signing algorithm/);
    expect(
      parseAuthorization(`PC1-HMAC-SHA256 Credential=k,SignedHeaders=x-pc-date,Signature=${"0".repeat(64)}`),
    ).toMatch(/must include `x-pc-content-sha256`, `x-pc-nonce`/);
  });
});

describe("authenticate", () => {
  it("accepts a correctly signed request and names its principal", async () => {
    const r = await verify(signed());
    expect(r.ok && r.credential.accessKeyId).toBe("LTAIkey");
  });
  it("refuses a request signed with another secret", async () => {
    expect(codeOf(await verify(signed({ secret: "wrong" })))).toBe("SignatureDoesNotMatch");
  });
  it("refuses any change to method, path, query, body or a signed header", async () => {
    const base = signed();
    expect(codeOf(await verify({ ...base, method: "PUT" }))).toBe("SignatureDoesNotMatch");
    expect(codeOf(await verify({ ...base, url: "/v1/groups?waitEnforced=true" }))).toBe(
      "SignatureDoesNotMatch",
    );
    expect(codeOf(await verify({ ...base, url: "/v1/users?waitEnforced=false" }))).toBe(
      "SignatureDoesNotMatch",
    );
    expect(codeOf(await verify({ ...base, body: Buffer.from('{"userName":"mallory"}') }))).toBe(
      "ContentHashMismatch",
    );
    expect(codeOf(await verify({ ...base, headers: { ...base.headers, host: "evil:1" } }))).toBe(
      "SignatureDoesNotMatch",
    );
    const rehashed = { ...base.headers, "x-pc-content-sha256": sha256Hex("{}") };
    expect(codeOf(await verify({ ...base, headers: rehashed, body: Buffer.from("{}") }))).toBe(
      "SignatureDoesNotMatch",
    );
  });
  it("refuses a stale or future timestamp beyond the skew, accepts one within it", async () => {
    expect(codeOf(await verify(signed({ date: new Date(NOW - SKEW - 1000) })))).toBe("RequestExpired");
    expect(codeOf(await verify(signed({ date: new Date(NOW + SKEW + 1000) })))).toBe("RequestExpired");
    expect(codeOf(await verify(signed({ date: new Date(NOW - SKEW + 1000) })))).toBe("ok");
  });
  it("refuses a replayed request within the window", async () => {
    const nonces = new NonceCache();
    const r = signed();
    expect(codeOf(await verify(r, nonces))).toBe("ok");
    const again = await verify(r, nonces, NOW + 1000);
    expect(codeOf(again)).toBe("ReplayedRequest");
    expect(!again.ok && again.message).toMatch(/already used/);
    // Another nonce is fine.
    expect(codeOf(await verify(signed(), nonces))).toBe("ok");
  });
  it("a wrongly signed request does not burn its nonce", async () => {
    const nonces = new NonceCache();
    const nonce = "n".repeat(20);
    expect(codeOf(await verify(signed({ nonce, secret: "wrong" }), nonces))).toBe("SignatureDoesNotMatch");
    expect(codeOf(await verify(signed({ nonce }), nonces))).toBe("ok");
  });
  it("refuses unsigned requests, bad nonces, bad dates, unknown and inactive keys", async () => {
    const base = signed();
    const { authorization: _, ...unsigned } = base.headers;
    expect(codeOf(await verify({ ...base, headers: unsigned }))).toBe("MissingAuthentication");
    expect(codeOf(await verify(signed({ nonce: "short" })))).toBe("InvalidNonce");
    expect(codeOf(await verify({ ...base, headers: { ...base.headers, "x-pc-date": "yesterday" } }))).toBe(
      "InvalidTimestamp",
    );
    const other = {
      ...base,
      headers: {
        ...base.headers,
        authorization: String(base.headers.authorization).replace("LTAIkey", "LTAIother"),
      },
    };
    expect(codeOf(await verify(other))).toBe("InvalidAccessKeyId.NotFound");
    const inactive = await authenticate(base, () => ({ ...cred, usable: false }), new NonceCache(), {
      maxClockSkewMs: SKEW,
      now: NOW,
    });
    expect(codeOf(inactive)).toBe("InvalidAccessKeyId.Inactive");
  });
});

describe("NonceCache", () => {
  it("forgets nonces once their window has passed, and refuses when full rather than forget", () => {
    const c = new NonceCache({ maxEntries: 2 });
    expect(c.check("k", "a", 100, 0)).toBe("ok");
    expect(c.check("k", "b", 100, 0)).toBe("ok");
    expect(c.check("k", "c", 100, 0)).toBe("full");
    expect(c.check("k", "a", 100, 50)).toBe("replayed");
    expect(c.check("k", "c", 300, 200)).toBe("ok"); // a and b expired at 100
    expect(c.size).toBe(1);
    expect(c.check("other", "c", 300, 200)).toBe("ok"); // per AccessKey
  });
});
