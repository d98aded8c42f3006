/**
 * Authentication of admin requests (see signing.ts for the scheme). Checks, in
 * order: the Authorization header, the timestamp against the clock-skew
 * bound, the body hash, the AccessKey (exists, active, its user enabled), the
 * signature (timing-safe), and last the nonce (recorded only for a request
 * whose signature is right, so nobody can burn another's nonces).
 */
import { safeEqual } from "@portcullis/events";
import type { Credential } from "@portcullis/feed";
import {
  computeSignature,
  isValidNonce,
  type NonceStore,
  type NonceVerdict,
  parseAuthorization,
  SIGNING_HEADERS,
  sha256Hex,
} from "./signing.ts";

/** Why authentication failed; `code` is stable (metrics label, 401 body). */
export interface AuthFailure {
  ok: false;
  code:
    | "MissingAuthentication"
    | "InvalidAuthorization"
    | "InvalidTimestamp"
    | "RequestExpired"
    | "InvalidNonce"
    | "ContentHashMismatch"
    | "InvalidAccessKeyId.NotFound"
    | "InvalidAccessKeyId.Inactive"
    | "SignatureDoesNotMatch"
    | "ReplayedRequest"
    | "NonceCacheFull"
    | "NonceStoreUnavailable";
  message: string;
}

/** An authenticated caller. */
export interface AuthSuccess {
  ok: true;
  credential: Credential;
}

/** What the verifier needs from a request. */
export interface RawRequest {
  method: string;
  /** Raw request target (path and query as sent). */
  url: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: Buffer;
}

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** Verify a signed request. `resolve` looks the AccessKey up (CredentialResolver.resolve). */
export async function authenticate(
  req: RawRequest,
  resolve: (accessKeyId: string) => Credential | undefined,
  nonces: NonceStore,
  opts: { maxClockSkewMs: number; now?: number },
): Promise<AuthSuccess | AuthFailure> {
  const fail = (code: AuthFailure["code"], message: string): AuthFailure => ({ ok: false, code, message });
  const now = opts.now ?? Date.now();
  const header = one(req.headers[SIGNING_HEADERS.authorization]);
  if (!header)
    return fail(
      "MissingAuthentication",
      "the request is not signed: send an `Authorization: PC1-HMAC-SHA256 …` header (see /openapi.json)",
    );
  const auth = parseAuthorization(header);
  if (typeof auth === "string") return fail("InvalidAuthorization", auth);
  for (const h of auth.signedHeaders)
    if (req.headers[h] === undefined)
      return fail("InvalidAuthorization", `signed header \`${h}\` is missing`);

  const dateText = one(req.headers[SIGNING_HEADERS.date]) ?? "";
  const t = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/.test(dateText)
    ? Date.parse(dateText)
    : Number.NaN;
  if (Number.isNaN(t))
    return fail(
      "InvalidTimestamp",
      `\`${SIGNING_HEADERS.date}\` must be an ISO 8601 UTC time, got \`${dateText}\``,
    );
  if (Math.abs(now - t) > opts.maxClockSkewMs)
    return fail(
      "RequestExpired",
      `request time ${dateText} is ${Math.round((now - t) / 1000)} s away from the server's clock (at most ${Math.round(
        opts.maxClockSkewMs / 1000,
      )} s allowed)`,
    );

  const nonce = one(req.headers[SIGNING_HEADERS.nonce]) ?? "";
  if (!isValidNonce(nonce))
    return fail("InvalidNonce", `\`${SIGNING_HEADERS.nonce}\` must be 16–128 characters of [A-Za-z0-9_-]`);

  const claimed = one(req.headers[SIGNING_HEADERS.contentSha256]) ?? "";
  if (!safeEqual(claimed, sha256Hex(req.body)))
    return fail("ContentHashMismatch", `\`${SIGNING_HEADERS.contentSha256}\` does not match the body`);

  const credential = resolve(auth.accessKeyId);
  if (!credential)
    return fail("InvalidAccessKeyId.NotFound", `access key \`${auth.accessKeyId}\` does not exist`);
  if (!credential.usable)
    return fail(
      "InvalidAccessKeyId.Inactive",
      `access key \`${auth.accessKeyId}\` is inactive or its user is disabled`,
    );

  const expected = computeSignature(credential.secret, {
    method: req.method,
    url: req.url,
    headers: req.headers,
    signedHeaders: auth.signedHeaders,
  });
  if (!safeEqual(auth.signature, expected))
    return fail(
      "SignatureDoesNotMatch",
      "the signature does not match: sign METHOD, path, canonical query, the signed headers and the body hash with the AccessKey secret",
    );

  let seen: NonceVerdict;
  try {
    seen = await nonces.check(auth.accessKeyId, nonce, t + opts.maxClockSkewMs, now);
  } catch {
    // The shared nonce store is unreachable: refuse rather than risk accepting a replay.
    return fail("NonceStoreUnavailable", "replay protection is unavailable right now; retry later");
  }
  if (seen === "replayed")
    return fail("ReplayedRequest", `nonce \`${nonce}\` was already used: every request needs a fresh nonce`);
  if (seen === "full")
    return fail("NonceCacheFull", "too many requests within the clock-skew window; retry later");
  return { ok: true, credential };
}
