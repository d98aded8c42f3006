/**
 * AccessKey secrets never appear in clear in an event (SPEC §5): they are
 * sealed with AES-256-GCM under a master key from configuration. The sealed
 * form names its key id so master keys can be rotated.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** A sealed secret as stored in an event. */
export interface SealedSecret {
  alg: "AES-256-GCM";
  /** Identifies the master key (first 8 hex chars of its SHA-256). */
  keyId: string;
  iv: string;
  tag: string;
  ciphertext: string;
}

/** Raised when a master key is malformed or a sealed secret cannot be opened. */
export class SecretError extends Error {
  override name = "SecretError";
  readonly code = "SECRET_ERROR";
}

/** Parse a 32-byte master key given as 64 hex characters or base64. */
export function parseMasterKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, "hex") : Buffer.from(t, "base64");
  if (key.length !== 32) throw new SecretError("master key must be 32 bytes (64 hex characters or base64)");
  return key;
}

/** Seals and opens secrets with one master key. */
export class SecretBox {
  readonly keyId: string;
  private readonly key: Buffer;
  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new SecretError("master key must be 32 bytes");
    this.key = Buffer.from(masterKey);
    this.keyId = createHash("sha256").update(masterKey).digest("hex").slice(0, 8);
  }

  /** A box with a fresh random key (tests, first start). */
  static generate(): { box: SecretBox; masterKey: Buffer } {
    const masterKey = randomBytes(32);
    return { box: new SecretBox(masterKey), masterKey };
  }

  /** Seal `secret`; `aad` binds it to its context (e.g. the AccessKeyId). */
  seal(secret: string, aad: string): SealedSecret {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.key, iv);
    c.setAAD(Buffer.from(aad));
    const ciphertext = Buffer.concat([c.update(secret, "utf8"), c.final()]);
    return {
      alg: "AES-256-GCM",
      keyId: this.keyId,
      iv: iv.toString("base64"),
      tag: c.getAuthTag().toString("base64"),
      ciphertext: ciphertext.toString("base64"),
    };
  }

  /** Open a sealed secret; throws SecretError when the key or the context is wrong. */
  open(sealed: SealedSecret, aad: string): string {
    if (sealed.keyId !== this.keyId)
      throw new SecretError(`secret sealed with key \`${sealed.keyId}\`, not \`${this.keyId}\``);
    try {
      const d = createDecipheriv("aes-256-gcm", this.key, Buffer.from(sealed.iv, "base64"));
      d.setAAD(Buffer.from(aad));
      d.setAuthTag(Buffer.from(sealed.tag, "base64"));
      return Buffer.concat([d.update(Buffer.from(sealed.ciphertext, "base64")), d.final()]).toString("utf8");
    } catch {
      throw new SecretError("sealed secret does not open: wrong key, wrong context or tampered data");
    }
  }
}

/** Timing-safe string equality (for signatures and secrets). */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ab.length !== bb.length) {
    timingSafeEqual(ab, ab); // spend comparable time
    return false;
  }
  return timingSafeEqual(ab, bb);
}

/**
 * The additional authenticated data an AccessKey secret is sealed with: binds
 * the ciphertext to its key id, so a sealed secret copied onto another key
 * does not open.
 */
export function accessKeyAad(accessKeyId: string): string {
  return `AccessKey:${accessKeyId}`;
}
