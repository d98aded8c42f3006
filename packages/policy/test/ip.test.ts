/**
 * Policy IP values: the dotted-quad fast path of `parseIpRange` gives what
 * ipaddr.js gives (the path every other form takes), for any IPv4 address and
 * prefix length, and odd forms still go through ipaddr.js.
 */
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { describe, expect, it } from "vitest";
import { parseIpRange } from "../src/ip.ts";

/** The range as ipaddr.js alone reads it (IPv4 results only; undefined when it refuses). */
function viaIpaddr(s: string): { base: number; mask: number } | undefined {
  try {
    const [addr, bits] = s.includes("/") ? ipaddr.parseCIDR(s) : [ipaddr.parse(s), 32];
    if (addr.kind() !== "ipv4") return undefined;
    const n = (addr as ipaddr.IPv4).octets.reduce((a, o) => a * 256 + o, 0);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return { base: (n & mask) >>> 0, mask };
  } catch {
    return undefined;
  }
}

describe("parseIpRange", () => {
  it("agrees with ipaddr.js on dotted-quad addresses and CIDRs", () => {
    const octet = fc.integer({ min: 0, max: 255 });
    fc.assert(
      fc.property(
        fc.tuple(octet, octet, octet, octet),
        fc.option(fc.integer({ min: 0, max: 40 })),
        (o, bits) => {
          const s = `${o.join(".")}${bits === null ? "" : `/${bits}`}`;
          const mine = parseIpRange(s);
          const ref = viaIpaddr(s);
          if (ref === undefined) expect(mine).toBeUndefined();
          else expect(mine).toEqual({ v: 4, ...ref });
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("leaves other forms to ipaddr.js: IPv6, mapped IPv4, and refuses what it refuses", () => {
    expect(parseIpRange("2001:db8::/32")).toMatchObject({ v: 6, bits: 32 });
    expect(parseIpRange("::ffff:10.0.0.0/104")).toEqual({ v: 4, base: 0x0a000000, mask: 0xff000000 });
    for (const bad of [
      "10.0.0.0/33",
      "10.0.0.256",
      "10.0.0",
      "10.0.0.0/",
      "/8",
      "10.0.0.0/8/8",
      "01.2.3.4/8",
    ])
      expect(parseIpRange(bad), bad).toEqual(
        viaIpaddr(bad) === undefined ? undefined : { v: 4, ...viaIpaddr(bad)! },
      );
  });
});
