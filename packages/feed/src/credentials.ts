/**
 * AccessKey lookup for the edges and the admin plane: resolves an AccessKeyId
 * through the projection and opens its sealed secret once (AES-256-GCM, SPEC
 * §5). The opened secret is kept in memory only, keyed by the sealed value, so
 * a new key under the same id (never expected) is opened again.
 */
import { accessKeyAad, type SecretBox } from "@portcullis/events";
import type { PrincipalRef, Projection } from "@portcullis/projection";

/** A usable credential: the key's owner and its secret in clear (memory only, never logged). */
export interface Credential {
  accessKeyId: string;
  principal: PrincipalRef;
  /** RAM user name (users only). */
  userName?: string;
  /** The secret in clear; compare signatures with `safeEqual`. */
  secret: string;
  /** False when the key is inactive, or its user disabled. */
  usable: boolean;
}

/** Resolves AccessKeys against a projection, caching opened secrets. */
export class CredentialResolver {
  readonly #projection: Projection;
  readonly #box: SecretBox;
  readonly #opened = new Map<string, { ciphertext: string; secret: string }>();

  constructor(projection: Projection, box: SecretBox) {
    this.#projection = projection;
    this.#box = box;
  }

  /** The credential for `accessKeyId`, or undefined when no such key exists (or it cannot be opened). */
  resolve(accessKeyId: string): Credential | undefined {
    const r = this.#projection.resolveAccessKey(accessKeyId);
    if (!r) return undefined;
    let o = this.#opened.get(accessKeyId);
    if (!o || o.ciphertext !== r.key.secret.ciphertext) {
      try {
        o = {
          ciphertext: r.key.secret.ciphertext,
          secret: this.#box.open(r.key.secret, accessKeyAad(accessKeyId)),
        };
      } catch {
        return undefined;
      }
      this.#opened.set(accessKeyId, o);
    }
    return {
      accessKeyId,
      principal: r.principal,
      ...(r.userName !== undefined ? { userName: r.userName } : {}),
      secret: o.secret,
      usable: r.usable,
    };
  }

  /** Forget opened secrets of these keys (call with `affected.accessKeys`). */
  forget(accessKeyIds: Iterable<string>): void {
    for (const id of accessKeyIds) this.#opened.delete(id);
  }
}
