/** Fresh identifiers and secrets (Alibaba-style shapes). Random from the CSPRNG. */
import { randomInt } from "node:crypto";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function pick(alphabet: string, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

/** A 16-digit account id (no leading zero). */
export function newAccountId(): string {
  return `${randomInt(1, 10)}${pick("0123456789", 15)}`;
}

/** A RAM user id: 16 digits, as RAM shows them. */
export function newUserId(): string {
  return `2${pick("0123456789", 15)}`;
}

/** A RAM group id. */
export function newGroupId(): string {
  return `g-${pick("abcdefghijklmnopqrstuvwxyz0123456789", 16)}`;
}

/** An AccessKey id: `LTAI` + 20 letters and digits (24 characters, like Alibaba Cloud's). */
export function newAccessKeyId(): string {
  return `LTAI${pick(ALNUM, 20)}`;
}

/** An AccessKey secret: 30 letters and digits (≈178 bits). */
export function newAccessKeySecret(): string {
  return pick(ALNUM, 30);
}
