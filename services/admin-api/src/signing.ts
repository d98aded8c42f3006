/**
 * Request signing for the admin API, modelled on Alibaba Cloud's ACS3 and AWS
 * SigV4 header signing, with one algorithm `PC1-HMAC-SHA256`.
 *
 * A signed request carries:
 *
 *     x-pc-date:            2025-05-01T12:00:00.000Z   (ISO 8601, UTC; bounded clock skew)
 *     x-pc-nonce:           16–128 chars [A-Za-z0-9_-] (unique per AccessKey within the skew window)
 *     x-pc-content-sha256:  hex SHA-256 of the body bytes (of "" when there is no body)
 *     authorization:        PC1-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2…>,Signature=<hex>
 *
 * The signature is `hex(HMAC-SHA256(AccessKeySecret, StringToSign))` with
 *
 *     StringToSign     = "PC1-HMAC-SHA256" "\n" hex(SHA-256(CanonicalRequest))
 *     CanonicalRequest = METHOD "\n" CanonicalURI "\n" CanonicalQuery "\n"
 *                        CanonicalHeaders "\n" SignedHeaders "\n" x-pc-content-sha256
 *
 * - CanonicalURI is the request path exactly as sent (already percent-encoded).
 * - CanonicalQuery: the `name=value` pairs of the raw query, each side
 *   percent-decoded then re-encoded per RFC 3986 (unreserved characters kept),
 *   sorted by name then value, joined with `&`.
 * - CanonicalHeaders: for each signed header, in the order of SignedHeaders
 *   (lower-case names, sorted, `;`-separated), `name:value\n` with the value
 *   trimmed and inner runs of spaces collapsed. SignedHeaders must include
 *   `x-pc-content-sha256`, `x-pc-date` and `x-pc-nonce`; clients also sign `host`.
 *
 * Pure functions only (no I/O), shared by the server and {@link AdminClient}.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";

/** The signing algorithm name (first word of the Authorization header). */
export const SIGNING_ALGORITHM = "PC1-HMAC-SHA256";
/** Header names used by the scheme. */
export const SIGNING_HEADERS = Object.freeze({
  date: "x-pc-date",
  nonce: "x-pc-nonce",
  contentSha256: "x-pc-content-sha256",
  authorization: "authorization",
});
/** Headers every signature must cover. */
export const REQUIRED_SIGNED_HEADERS: readonly string[] = [
  SIGNING_HEADERS.contentSha256,
  SIGNING_HEADERS.date,
  SIGNING_HEADERS.nonce,
];
const NONCE_RE = /^[A-Za-z0-9_-]{16,128}$/;

/** hex SHA-256 of a body (`""` when absent). */
export function sha256Hex(body: string | Uint8Array = ""): string {
  return createHash("sha256").update(body).digest("hex");
}

/** RFC 3986 percent-encoding (unreserved `A-Z a-z 0-9 - . _ ~` kept). */
export function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** The canonical query string of a raw query (without `?`). */
export function canonicalQuery(rawQuery: string): string {
  if (rawQuery === "") return "";
  const pairs = rawQuery
    .split("&")
    .filter((p) => p !== "")
    .map((p) => {
      const eq = p.indexOf("=");
      const k = eq < 0 ? p : p.slice(0, eq);
      const v = eq < 0 ? "" : p.slice(eq + 1);
      return [rfc3986(safeDecode(k)), rfc3986(safeDecode(v))] as const;
    });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

const headerValue = (v: string | string[] | undefined) =>
  (Array.isArray(v) ? v.join(",") : (v ?? "")).trim().replace(/\s+/g, " ");

/** What is signed. `url` is the raw request target: path plus optional `?query`. */
export interface SignableRequest {
  method: string;
  url: string;
  /** Header names in any case. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  signedHeaders: readonly string[];
}

/** The canonical request (see the module comment). */
export function canonicalRequest(r: SignableRequest): string {
  const q = r.url.indexOf("?");
  const path = q < 0 ? r.url : r.url.slice(0, q);
  const query = q < 0 ? "" : r.url.slice(q + 1);
  const lower: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(r.headers)) lower[k.toLowerCase()] = v;
  const names = [...r.signedHeaders].map((h) => h.toLowerCase()).sort();
  return [
    r.method.toUpperCase(),
    path,
    canonicalQuery(query),
    names.map((n) => `${n}:${headerValue(lower[n])}\n`).join(""),
    names.join(";"),
    headerValue(lower[SIGNING_HEADERS.contentSha256]),
  ].join("\n");
}

/** `StringToSign` of a canonical request. */
export function stringToSign(canonical: string): string {
  return `${SIGNING_ALGORITHM}\n${sha256Hex(canonical)}`;
}

/** The hex signature of a request with a secret. */
export function computeSignature(secret: string, r: SignableRequest): string {
  return createHmac("sha256", secret)
    .update(stringToSign(canonicalRequest(r)))
    .digest("hex");
}

/** A fresh random nonce. */
export function newNonce(): string {
  return randomBytes(18).toString("base64url");
}

/** Inputs of {@link signRequest}. */
export interface SignOptions {
  method: string;
  /** Raw request target: path (percent-encoded) plus optional `?query`. */
  url: string;
  /** The `host` header the client will send (`127.0.0.1:8181`); signed when given. */
  host?: string;
  body?: string | Uint8Array;
  accessKeyId: string;
  accessKeySecret: string;
  /** Default: now. */
  date?: Date;
  /** Default: random. */
  nonce?: string;
  /** More headers to send and sign (lower-case names). */
  extraHeaders?: Record<string, string>;
}

/** The headers that sign a request (add them to the request as they are). */
export function signRequest(o: SignOptions): Record<string, string> {
  const headers: Record<string, string> = {
    ...(o.extraHeaders ?? {}),
    [SIGNING_HEADERS.date]: (o.date ?? new Date()).toISOString(),
    [SIGNING_HEADERS.nonce]: o.nonce ?? newNonce(),
    [SIGNING_HEADERS.contentSha256]: sha256Hex(o.body ?? ""),
  };
  if (o.host !== undefined) headers.host = o.host;
  const signedHeaders = Object.keys(headers)
    .map((h) => h.toLowerCase())
    .sort();
  const signature = computeSignature(o.accessKeySecret, {
    method: o.method,
    url: o.url,
    headers,
    signedHeaders,
  });
  headers[SIGNING_HEADERS.authorization] =
    `${SIGNING_ALGORITHM} Credential=${o.accessKeyId},SignedHeaders=${signedHeaders.join(";")},Signature=${signature}`;
  return headers;
}

/** The fields of an Authorization header. */
export interface ParsedAuthorization {
  accessKeyId: string;
  signedHeaders: string[];
  signature: string;
}

/** Parse `PC1-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`; a reason string when malformed. */
export function parseAuthorization(header: string): ParsedAuthorization | string {
  const sp = header.indexOf(" ");
  const alg = sp < 0 ? header : header.slice(0, sp);
  if (alg !== SIGNING_ALGORITHM)
    return `unsupported signing algorithm \`${alg}\` (expected ${SIGNING_ALGORITHM})`;
  const fields = new Map<string, string>();
  for (const part of header.slice(sp + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const accessKeyId = fields.get("Credential");
  const signed = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!accessKeyId) return "authorization header has no `Credential`";
  if (!signed) return "authorization header has no `SignedHeaders`";
  if (!signature || !/^[0-9a-f]{64}$/.test(signature))
    return "authorization header has no `Signature` of 64 lower-case hex digits";
  const signedHeaders = signed.split(";").map((h) => h.trim().toLowerCase());
  const missing = REQUIRED_SIGNED_HEADERS.filter((h) => !signedHeaders.includes(h));
  if (missing.length > 0) return `SignedHeaders must include ${missing.map((m) => `\`${m}\``).join(", ")}`;
  return { accessKeyId, signedHeaders, signature };
}

/** True for a well-formed nonce. */
export function isValidNonce(n: string): boolean {
  return NONCE_RE.test(n);
}

/** A nonce check's answer: first use, seen before (and not expired), or no room to remember it. */
export type NonceVerdict = "ok" | "replayed" | "full";

/**
 * Where the nonces of signed requests are remembered while their timestamps
 * are within the clock-skew window. One admin process: {@link NonceCache}.
 * Several admin processes behind one store must share one (SqliteNonceStore
 * for a shared data dir, JetStreamNonceStore when distributed), or a request
 * replayed to another process would be accepted there.
 */
export interface NonceStore {
  /** Record `nonce` for `accessKeyId` until `expiresAt` (epoch ms), atomically with the check. */
  check(
    accessKeyId: string,
    nonce: string,
    expiresAt: number,
    now?: number,
  ): NonceVerdict | Promise<NonceVerdict>;
  close?(): void | Promise<void>;
}

/**
 * Nonces seen within the clock-skew window, per AccessKey, in this process: a
 * signed request is accepted once. An entry lives until its request's timestamp leaves the
 * window (after that the timestamp check refuses the request anyway).
 * Bounded: when `maxEntries` unexpired nonces are held, new requests are
 * refused rather than an unexpired nonce forgotten (which would open a replay).
 */
export class NonceCache implements NonceStore {
  readonly #seen = new Map<string, number>();
  readonly #maxEntries: number;
  #lastPrune = 0;

  constructor(opts: { maxEntries?: number } = {}) {
    this.#maxEntries = opts.maxEntries ?? 200_000;
  }

  /** Number of nonces held. */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * Record `nonce` for `accessKeyId` until `expiresAt` (epoch ms). Returns
   * `"ok"`, `"replayed"` when it was seen and has not expired, or `"full"`.
   */
  check(accessKeyId: string, nonce: string, expiresAt: number, now = Date.now()): NonceVerdict {
    const k = `${accessKeyId}\n${nonce}`;
    const seen = this.#seen.get(k);
    if (seen !== undefined && seen >= now) return "replayed";
    if (now - this.#lastPrune > 1_000 || this.#seen.size >= this.#maxEntries) this.prune(now);
    if (this.#seen.size >= this.#maxEntries) return "full";
    this.#seen.set(k, expiresAt);
    return "ok";
  }

  /** Forget expired nonces. */
  prune(now = Date.now()): void {
    this.#lastPrune = now;
    for (const [k, exp] of this.#seen) if (exp < now) this.#seen.delete(k);
  }
}
