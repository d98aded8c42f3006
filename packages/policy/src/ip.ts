/**
 * IP addresses and CIDR ranges for `IpAddress`/`NotIpAddress`. Policy values are
 * validated and parsed with ipaddr.js at compile time; request addresses go
 * through a small IPv4 fast path first because they are parsed on every
 * uncached decision.
 */
import ipaddr from "ipaddr.js";

/** A parsed address: IPv4 as one 32-bit number, IPv6 as eight 16-bit parts. */
export type IpValue = { v: 4; n: number } | { v: 6; parts: number[] };

/** A compiled range (single address = full prefix). */
export type IpRange = { v: 4; base: number; mask: number } | { v: 6; parts: number[]; bits: number };

function parseV4Fast(s: string): number | undefined {
  let n = 0;
  let octet = -1;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (octet < 0 || dots === 3) return undefined;
      n = n * 256 + octet;
      octet = -1;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (octet === 0) return undefined; // no leading zeros (ambiguous octal)
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      if (octet > 255) return undefined;
    } else return undefined;
  }
  if (dots !== 3 || octet < 0) return undefined;
  return n * 256 + octet;
}

/** Parse a request address; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4. Undefined if invalid. */
export function parseIp(s: string): IpValue | undefined {
  const v4 = parseV4Fast(s);
  if (v4 !== undefined) return { v: 4, n: v4 };
  if (!s.includes(":")) return undefined;
  try {
    const a = ipaddr.IPv6.parse(s);
    if (a.isIPv4MappedAddress()) return { v: 4, n: parseV4Fast(a.toIPv4Address().toString())! };
    return { v: 6, parts: a.parts.slice() };
  } catch {
    return undefined;
  }
}

const V4_CIDR = /^([0-9.]+)\/(\d{1,2})$/;

/** Parse a policy value (`10.0.0.0/8`, `192.168.1.1`, `2001:db8::/32`); undefined if invalid. */
export function parseIpRange(s: string): IpRange | undefined {
  // Plain dotted-quad IPv4, with or without a prefix length, without ipaddr.js (which tries
  // IPv6 first and pays for a thrown error on every IPv4 value). Anything else goes to it.
  const m = V4_CIDR.exec(s);
  const n = m ? parseV4Fast(m[1]!) : parseV4Fast(s);
  if (n !== undefined) {
    const bits = m ? Number(m[2]) : 32;
    if (bits <= 32) {
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      return { v: 4, base: (n & mask) >>> 0, mask };
    }
  }
  try {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    let bits: number;
    if (s.includes("/")) [addr, bits] = ipaddr.parseCIDR(s);
    else {
      if (!ipaddr.isValid(s)) return undefined;
      addr = ipaddr.parse(s);
      bits = addr.kind() === "ipv4" ? 32 : 128;
    }
    if (addr.kind() === "ipv4") {
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      const n = parseV4Fast(addr.toString())!;
      return { v: 4, base: (n & mask) >>> 0, mask };
    }
    const v6 = addr as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress() && bits >= 96) {
      const mask = bits === 96 ? 0 : (0xffffffff << (128 - bits)) >>> 0;
      const n = parseV4Fast(v6.toIPv4Address().toString())!;
      return { v: 4, base: (n & mask) >>> 0, mask };
    }
    return { v: 6, parts: v6.parts.slice(), bits };
  } catch {
    return undefined;
  }
}

/** Is `ip` inside `range`? */
export function ipInRange(ip: IpValue, range: IpRange): boolean {
  if (ip.v === 4) return range.v === 4 && (ip.n & range.mask) >>> 0 === range.base;
  if (range.v !== 6) return false;
  let left = range.bits;
  for (let i = 0; i < 8 && left > 0; i++) {
    const take = Math.min(16, left);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if ((ip.parts[i]! & mask) !== (range.parts[i]! & mask)) return false;
    left -= take;
  }
  return true;
}
